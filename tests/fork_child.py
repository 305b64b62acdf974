"""Run by test_attacks: a process with a server and a proxy forks (os.fork or multiprocessing's
fork start method); the child tries the inherited objects, then new ones, then exits normally.
Prints one JSON line of what happened."""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from objects import Stage  # noqa: E402

from pizco_qt import Proxy, Server  # noqa: E402
from pizco_qt.errors import ProxyClosed  # noqa: E402


def attempt(what, fn):
    t0 = time.monotonic()
    try:
        fn()
    except ProxyClosed as exc:
        return {"what": what, "error": "ProxyClosed", "text": str(exc), "seconds": time.monotonic() - t0}
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        return {"what": what, "error": type(exc).__name__, "text": str(exc), "seconds": time.monotonic() - t0}
    return {"what": what, "error": None, "seconds": time.monotonic() - t0}


def in_child(server, proxy, parent_pid):
    import signal

    signal.alarm(20)  # a child that hangs (a regression) ends by itself, never left behind
    out = {"parent": parent_pid, "child": os.getpid()}
    out["inherited"] = [
        attempt("proxy call", lambda: proxy.move_by(1)),
        attempt("proxy attribute", lambda: proxy.position),
        attempt("proxy connect", lambda: proxy.moved.connect(print)),
        attempt("server publish", lambda: server.publish("moved", ())),
        attempt("server serve_forever", server.serve_forever),
        attempt("agent request", lambda: proxy._proxy_agent.request(server.rep_endpoint, "info")),
    ]
    fresh = Proxy(server.rep_endpoint, timeout=5)  # a new proxy to the parent's server
    out["new_proxy_to_parent"] = fresh.move_by(0)
    mine = Server(Stage(position=7.0))
    with Proxy(mine.rep_endpoint, timeout=5) as p:
        out["new_server_in_child"] = p.move_by(1)
    server.stop()  # the parent's: does nothing here
    proxy._proxy_stop_me()
    out["done"] = time.time()
    return out


def main(mode):
    server = Server(Stage())
    proxy = Proxy(server.rep_endpoint, timeout=5)
    proxy.move_by(1)
    parent = os.getpid()
    if mode == "fork":
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            out = in_child(server, proxy, parent)
            os.write(w, json.dumps(out).encode())
            os.close(w)
            sys.exit(0)  # a normal exit: the exit hooks run
        os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        got = time.time()
        _, status = os.waitpid(pid, 0)
        result = json.loads(data)
        result["exit_seconds"] = time.time() - result["done"]
        result["read_to_exit"] = time.time() - got
        result["status"] = os.waitstatus_to_exitcode(status)
    else:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=lambda: queue.put(in_child(server, proxy, parent)))
        child.start()
        result = queue.get(timeout=30)
        child.join(10)
        result["exit_seconds"] = time.time() - result["done"]
        result["status"] = child.exitcode
    result["parent_still_works"] = proxy.move_by(1)
    proxy._proxy_stop_me()
    server.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
