"""Run by test_attacks with a lowered descriptor limit: servers and proxies are made until
pizco_qt refuses; prints one JSON line of what happened (the process must not abort)."""
from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

LIMIT = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

from objects import Stage  # noqa: E402

from pizco_qt import PizcoError, Proxy, Server  # noqa: E402

made = []
out = {"limit": LIMIT, "errors": []}


def attempt(what, fn):
    t0 = time.monotonic()
    try:
        return fn()
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out["errors"].append({"what": what, "type": type(exc).__name__, "text": str(exc),
                              "pizco": isinstance(exc, PizcoError), "oserror": isinstance(exc, OSError),
                              "seconds": time.monotonic() - t0})
        return None


server = Server(Stage())
made.append(server)
first = Proxy(server.rep_endpoint, timeout=5)
made.append(first)
# servers and proxies until refused
for i in range(LIMIT):
    s = attempt("server", lambda: Server(Stage()))
    if s is None:
        break
    made.append(s)
for i in range(LIMIT):
    p = attempt("proxy", lambda: Proxy(server.rep_endpoint, timeout=5))
    if p is None:
        break
    made.append(p)
# something else takes the remaining descriptors, leaving fewer than pizco_qt keeps free
from pizco_qt import limits  # noqa: E402

hog = []
while limits.open_files() < LIMIT - limits.RESERVE - 2:
    hog.append(os.dup(0))
out["left_free"] = LIMIT - limits.open_files()
attempt("proxy when nearly out", lambda: Proxy(server.rep_endpoint, timeout=5))
attempt("server when nearly out", lambda: Server(Stage()))
# a call from a thread that has no connection yet
box = {}
t = threading.Thread(target=lambda: box.setdefault("v", attempt("call", lambda: first.move_by(1))))
t.start()
t.join(10)
out["call_from_new_thread"] = box.get("v")
out["existing_call"] = first.move_by(1)  # an existing connection keeps working
out["made"] = len(made)
for fd in hog:
    os.close(fd)
for thing in reversed(made):
    if isinstance(thing, Proxy):
        thing._proxy_stop_me()
    else:
        thing.stop()
print(json.dumps(out), flush=True)
