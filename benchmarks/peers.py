"""The systems under test: one server and one client adapter per system.

Every system serves the same work: ``echo(x)`` returns its argument, the
attribute ``value`` is read, and (where the system has notifications)
``emit_burst(n, rate)`` starts a thread that emits ``changed(i, t)`` ``n`` times
at ``rate`` per second (0 = as fast as possible), ``t`` being the sender's
``time.perf_counter()`` (CLOCK_MONOTONIC, comparable between processes on one
Linux machine).

Systems: ``raw_reqrep`` (pyzmq REQ/REP + pickle: the floor), ``raw_dealer``
(pyzmq DEALER/ROUTER + pickle), ``pizco_qt``, ``pyro5`` (as shipped: the serpent
serializer), ``pyro5_marshal`` (tuned: the marshal serializer, its fastest for
small calls and bytes) and ``rpyc``.

A server runs as ``python benchmarks/peers.py SYSTEM``: it prints one line
``READY <json>`` with what a client needs and serves until its stdin closes
(so it never outlives the benchmark).
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

SYSTEMS = ("raw_reqrep", "raw_dealer", "pizco_qt", "pyro5", "pyro5_marshal", "rpyc")
NOTIFYING = ("raw_reqrep", "pizco_qt")  # systems with a publish/subscribe path
HIGHEST = pickle.HIGHEST_PROTOCOL


def available(system: str) -> bool:
    """Whether the system's package is importable here."""
    mod = {"pyro5": "Pyro5", "pyro5_marshal": "Pyro5", "rpyc": "rpyc"}.get(system)
    if mod is None:
        return True
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def pace(n: int, rate: float, emit: Callable[[int, float], None]) -> None:
    """Call ``emit(i, perf_counter())`` ``n`` times at ``rate``/s (0: as fast as possible)."""
    now = time.perf_counter
    if rate <= 0:
        for i in range(n):
            emit(i, now())
        return
    t0 = now()
    i = 0
    while i < n:
        due = min(n, int((now() - t0) * rate) + 1)
        while i < due:
            emit(i, now())
            i += 1
        if i < n:
            time.sleep(min(0.001, max(0.0, t0 + i / rate - now())))


class Bench:
    """The served object (plain Python; the signal is added per system)."""

    def __init__(self) -> None:
        self.value = 42

    def echo(self, x: Any) -> Any:
        """Return the argument (the round-trip workload)."""
        return x


# ---------------------------------------------------------------------------------------- servers
def serve_raw(kind: str) -> Dict[str, Any]:
    """A single-threaded pyzmq REP or ROUTER server with pickle, plus a PUB socket."""
    import zmq

    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP if kind == "raw_reqrep" else zmq.ROUTER)
    rep.setsockopt(zmq.LINGER, 0)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    obj = Bench()
    pub_lock = threading.Lock()  # one burst thread owns the PUB socket at a time

    def burst(n: int, rate: float) -> None:
        with pub_lock:
            send = pub.send
            dumps = pickle.dumps
            pace(n, rate, lambda i, t: send(dumps((i, t), HIGHEST)))

    def handle(msg: bytes) -> bytes:
        name, args = pickle.loads(msg)
        if name == "__getattr__":
            result = getattr(obj, args[0])
        elif name == "emit_burst":
            threading.Thread(target=burst, args=args, daemon=True).start()
            result = None
        else:
            result = getattr(obj, name)(*args)
        return pickle.dumps(result, HIGHEST)

    def loop() -> None:
        try:
            if kind == "raw_reqrep":
                while True:
                    rep.send(handle(rep.recv()))
            else:
                while True:
                    ident, msg = rep.recv_multipart()
                    rep.send_multipart([ident, handle(msg)])
        except zmq.ZMQError:
            pass

    threading.Thread(target=loop, daemon=True).start()
    return {"endpoint": f"tcp://127.0.0.1:{port}", "pub": f"tcp://127.0.0.1:{pub_port}"}


def serve_pizco() -> Dict[str, Any]:
    """A pizco_qt Server of a Bench with a pizco_qt Signal."""
    from pizco_qt import Server, Signal

    # 100 attributes v0..v99 with change signals s0..s99, for the binding rows
    signals = {f"s{k}": Signal() for k in range(100)}

    class PizcoBench(Bench):
        changed = Signal()
        locals().update(signals)

        def __init__(self) -> None:
            super().__init__()
            for k in range(100):
                setattr(self, f"v{k}", 0)

        def emit_burst(self, n: int, rate: float) -> None:
            threading.Thread(target=pace, args=(n, rate, self.changed.emit), daemon=True).start()

        def emit_each(self, hz: float, seconds: float) -> None:
            """Emit s0..s99 at ``hz`` each for ``seconds`` (staggered)."""
            sigs = [getattr(self, f"s{k}") for k in range(100)]

            def emit(i: int, t: float) -> None:
                k = i % 100
                setattr(self, f"v{k}", i)
                sigs[k].emit(i)

            n = int(100 * hz * seconds)
            threading.Thread(target=pace, args=(n, 100 * hz, emit), daemon=True).start()

    server = Server(PizcoBench())
    return {"endpoint": server.rep_endpoint, "_keep": server}


def serve_pyro5(serializer: str) -> Dict[str, Any]:
    """A Pyro5 daemon (thread server) speaking ``serializer``."""
    import Pyro5.api

    Pyro5.api.config.SERIALIZER = serializer
    Pyro5.api.config.SERVERTYPE = "thread"

    @Pyro5.api.expose
    class PyroBench(Bench):
        def __init__(self) -> None:
            super().__init__()

        def echo(self, x: Any) -> Any:
            return x

        @property
        def value(self) -> int:  # type: ignore[override]
            return self._value

        @value.setter
        def value(self, v: int) -> None:
            self._value = v

    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(PyroBench(), "bench")
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    return {"endpoint": str(uri), "_keep": daemon}


def serve_rpyc() -> Dict[str, Any]:
    """An RPyC ThreadedServer of a service exposing echo and value."""
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class BenchService(rpyc.Service):
        exposed_value = 42

        def exposed_echo(self, x: Any) -> Any:
            return x

    server = ThreadedServer(BenchService, hostname="127.0.0.1", port=0,
                            protocol_config={"allow_public_attrs": True})
    threading.Thread(target=server.start, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.port and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"endpoint": f"127.0.0.1:{server.port}", "_keep": server}


def serve(system: str) -> None:
    """Start the server of ``system``, print READY, serve until stdin closes."""
    if system in ("raw_reqrep", "raw_dealer"):
        info = serve_raw(system)
    elif system == "pizco_qt":
        info = serve_pizco()
    elif system in ("pyro5", "pyro5_marshal"):
        info = serve_pyro5("marshal" if system == "pyro5_marshal" else "serpent")
    elif system == "rpyc":
        info = serve_rpyc()
    else:
        raise SystemExit(f"unknown system {system!r}")
    public = {k: v for k, v in info.items() if not k.startswith("_")}
    print("READY " + json.dumps(public), flush=True)
    sys.stdin.read()  # returns when the parent closes the pipe (or dies)
    keep = info.get("_keep")
    if system == "pizco_qt" and keep is not None:
        keep.stop()
    os._exit(0)


# ---------------------------------------------------------------------------------------- clients
class Client:
    """What a workload needs from a system (one instance per client process)."""

    shared_across_threads = True

    def call(self, x: Any) -> Any:  # pragma: no cover - interface
        """``echo(x)`` round trip."""
        raise NotImplementedError

    def attr(self) -> Any:  # pragma: no cover - interface
        """Read ``value``."""
        raise NotImplementedError

    def for_thread(self) -> "Client":
        """The client another thread uses: this one if it can be shared, else a new one."""
        return self

    def subscribe(self, callback: Callable[[int, float], None], gui: bool = False) -> None:
        """Call ``callback(i, t)`` per emission (on the GUI thread when ``gui``)."""
        raise NotImplementedError

    def unsubscribe(self) -> None:
        """Stop notifications."""

    def burst(self, n: int, rate: float) -> None:
        """Ask the server to start emitting."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything."""


class RawClient(Client):
    """pyzmq REQ (or DEALER) with pickle; one socket per thread (sockets are not thread-safe)."""

    shared_across_threads = False

    def __init__(self, info: Dict[str, Any], dealer: bool) -> None:
        import zmq

        self.zmq = zmq
        self.info = info
        self.dealer = dealer
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER if dealer else zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(info["endpoint"])
        self._sub_thread: Optional[threading.Thread] = None
        self._sub_stop = threading.Event()

    def _rt(self, name: str, args: tuple) -> Any:
        if self.dealer:
            self.sock.send_multipart([pickle.dumps((name, args), HIGHEST)])
            return pickle.loads(self.sock.recv())
        self.sock.send(pickle.dumps((name, args), HIGHEST))
        return pickle.loads(self.sock.recv())

    def call(self, x: Any) -> Any:
        return self._rt("echo", (x,))

    def attr(self) -> Any:
        return self._rt("__getattr__", ("value",))

    def for_thread(self) -> "RawClient":
        return RawClient(self.info, self.dealer)

    def subscribe(self, callback: Callable[[int, float], None], gui: bool = False) -> None:
        zmq = self.zmq
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 100_000)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.info["pub"])
        if gui:  # the plain way: a receiving thread emits a queued Qt signal per message
            from qtpy.QtCore import QObject, Signal

            class Relay(QObject):
                got = Signal(object)

            relay = self._relay = Relay()
            relay.got.connect(lambda args: callback(*args))
            deliver = relay.got.emit
        else:
            deliver = None
        stop = self._sub_stop

        def run() -> None:
            loads = pickle.loads
            recv = sub.recv
            poll = sub.poll
            while not stop.is_set():
                if poll(100):
                    while True:
                        try:
                            msg = recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        args = loads(msg)
                        if deliver is None:
                            callback(*args)
                        else:
                            deliver(args)
            sub.close(0)

        self._sub_thread = threading.Thread(target=run, daemon=True)
        self._sub_thread.start()
        # a PUB/SUB connection needs a moment before the first message is kept
        time.sleep(0.3)

    def unsubscribe(self) -> None:
        self._sub_stop.set()
        if self._sub_thread is not None:
            self._sub_thread.join(2)

    def burst(self, n: int, rate: float) -> None:
        self._rt("emit_burst", (n, rate))

    def close(self) -> None:
        self.unsubscribe()
        self.sock.close(0)


class PizcoClient(Client):
    """One pizco_qt Proxy, shared by every thread."""

    def __init__(self, info: Dict[str, Any]) -> None:
        from pizco_qt import Proxy

        self.proxy = Proxy(info["endpoint"])
        self._slot: Any = None

    def call(self, x: Any) -> Any:
        return self.proxy.echo(x)

    def attr(self) -> Any:
        return self.proxy.value

    def subscribe(self, callback: Callable[[int, float], None], gui: bool = False) -> None:
        self._slot = callback
        self.proxy.changed.connect(callback)

    def unsubscribe(self) -> None:
        if self._slot is not None:
            self.proxy.changed.disconnect(self._slot)
            self._slot = None

    def burst(self, n: int, rate: float) -> None:
        self.proxy.emit_burst(n, rate)

    def close(self) -> None:
        self.proxy._proxy_stop_me()


class Pyro5Client(Client):
    """A Pyro5 proxy per thread (Pyro5 proxies belong to the thread that made them)."""

    shared_across_threads = False

    def __init__(self, info: Dict[str, Any], serializer: str) -> None:
        import Pyro5.api

        Pyro5.api.config.SERIALIZER = serializer
        self.info = info
        self.serializer = serializer
        self.proxy = Pyro5.api.Proxy(info["endpoint"])
        self.proxy._pyroBind()

    def call(self, x: Any) -> Any:
        result = self.proxy.echo(x)
        if self.serializer == "serpent" and isinstance(result, dict):
            import serpent  # serpent sends bytes as base64 in a dict; users convert them back

            result = serpent.tobytes(result)
        return result

    def attr(self) -> Any:
        # what ``self.proxy.value`` does, with the kwargs that Pyro5's marshal serializer needs
        return self.proxy._pyroInvoke("__getattr__", ("value",), {})

    def for_thread(self) -> "Pyro5Client":
        return Pyro5Client(self.info, self.serializer)

    def close(self) -> None:
        self.proxy._pyroRelease()


class RpycClient(Client):
    """One RPyC connection, shared by every thread."""

    def __init__(self, info: Dict[str, Any]) -> None:
        import rpyc

        host, port = info["endpoint"].rsplit(":", 1)
        self.conn = rpyc.connect(host, int(port), config={"allow_public_attrs": True,
                                                           "sync_request_timeout": 60})
        self.root = self.conn.root

    def call(self, x: Any) -> Any:
        return self.root.echo(x)

    def attr(self) -> Any:
        return self.root.value

    def close(self) -> None:
        self.conn.close()


def make_client(system: str, info: Dict[str, Any]) -> Client:
    """The client adapter of ``system`` connected to the server described by ``info``."""
    if system == "raw_reqrep":
        return RawClient(info, dealer=False)
    if system == "raw_dealer":
        return RawClient(info, dealer=True)
    if system == "pizco_qt":
        return PizcoClient(info)
    if system in ("pyro5", "pyro5_marshal"):
        return Pyro5Client(info, "marshal" if system == "pyro5_marshal" else "serpent")
    if system == "rpyc":
        return RpycClient(info)
    raise ValueError(f"unknown system {system!r}")


if __name__ == "__main__":
    serve(sys.argv[1])
