"""Discovery: the registry of live servers, and the ``pizco-registry`` command.

A registry is an ordinary pizco_qt server whose served object is a
:class:`Registry`, at a well-known endpoint (``PZC_REGISTRY``, default
``tcp://127.0.0.1:5777``; start one with ``pizco-registry`` or
:func:`serve_registry`). Servers created with a name join it (see
:mod:`pizco_qt.registry_client`, whose public functions are re-exported here):
they reserve the name before binding, register after binding and re-send
their registration every 2 s. Entries expire 6 s after their last
registration, at once on a clean stop, and within half a second when the
registry sees that a process of its own machine is gone. The registry emits
``server_added(entry)`` and ``server_removed(name)``.

Thread affinity: ``Registry`` methods may be called from any thread; served,
they run on the registry server's worker thread, and so does the expiry sweep
(a timer on the I/O thread hands it over, so the I/O thread never blocks).
``main`` runs on the main thread.
"""
from __future__ import annotations

import argparse
import logging
import signal as _signal
import sys
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Sequence

from . import config
from .endpoints import normalize_optional
from .errors import PizcoError
from .registry_client import (ENTRY_KEYS, EXPIRY, OPTIONAL_KEYS, REFRESH_PERIOD, REGISTRY_TIMEOUT, RESERVE_TIMEOUT,
                           SWEEP_PERIOD,
                           RegistryUnavailable, _HERE, _check_name, _pid_is_dead, lookup, register_server,
                           registry_proxy, release_name, reserve_name, unregister_server)
from .signals import Signal

logger = logging.getLogger(__name__)

__all__ = [
    "Registry", "serve_registry", "registry_proxy", "lookup", "register_server",
    "unregister_server", "reserve_name", "release_name", "RegistryUnavailable", "main",
    "EXPIRY", "REFRESH_PERIOD", "RESERVE_TIMEOUT", "REGISTRY_TIMEOUT", "SWEEP_PERIOD", "ENTRY_KEYS",
]


# ====================================================================== the registry object
class _Record:
    """A registered server as the registry keeps it (the entry plus bookkeeping)."""

    __slots__ = ("entry", "token", "place", "seen")

    def __init__(self, entry: Dict[str, Any], token: str, place: str, seen: float) -> None:
        self.entry, self.token, self.place, self.seen = entry, token, place, seen


class Registry:
    """The object a registry server serves: who is serving what, where.

    Queried with ``servers()`` and ``lookup(name)``; servers call ``reserve``,
    ``register`` (also their periodic refresh) and ``unregister``. Entries expire
    ``expiry`` seconds after their last registration (``expire()`` applies it;
    a served registry runs it every 0.5 s on its worker thread).

    Signals: ``server_added(entry)`` when a server appears, ``server_removed(name)``
    when it is unregistered, expires or is found dead.

    Thread affinity: any thread (an internal lock guards the table); served, its
    methods run on the registry server's worker thread.
    """

    #: Signal(dict) -- a server registered; the argument is its entry.
    server_added = Signal(dict)
    #: Signal(str) -- a server left (clean stop, expiry or death); the argument is its name.
    server_removed = Signal(str)

    def __init__(self, expiry: float = EXPIRY) -> None:
        if expiry <= 0:
            raise ValueError(f"expiry must be positive, not {expiry!r}")
        self.expiry = float(expiry)
        self._records: Dict[str, _Record] = {}
        self._reserved: Dict[str, _Record] = {}
        self._gone: Dict[str, float] = {}  # tokens unregistered recently: late refreshes are ignored
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- queries
    def servers(self) -> List[Dict[str, Any]]:
        """Every live server's entry (a list of dicts with the keys of ``ENTRY_KEYS``, plus ``'station'``
        for a server started by a station), sorted by name."""
        with self._lock:
            return [dict(self._records[name].entry) for name in sorted(self._records)]

    def lookup(self, name: str) -> Dict[str, Any]:
        """The entry of the server registered as ``name``.

        Raises
        ------
        KeyError
            If no live server has that name.
        """
        with self._lock:
            record = self._records.get(name)
            if record is None:
                raise KeyError(name)
            return dict(record.entry)

    # ---------------------------------------------------------------- what servers call
    def reserve(self, name: str, token: str, host: str = "", pid: int = 0, place: str = "",
                rep_endpoint: str = "") -> Optional[Dict[str, Any]]:
        """Hold ``name`` for the server identified by ``token`` while it binds.

        ``rep_endpoint`` is the endpoint it is about to bind. Returns None when
        the name is held for it, else the entry of the live server (or
        reservation) that has the name. A server about to bind the fixed TCP
        endpoint of the holder, on the same machine, gets the name: the holder
        is dead if that bind succeeds (its registration then replaces the entry).
        """
        _check_name(name)
        now = time.time()
        removed: List[str] = []
        with self._lock:
            holder = self._holder(name, token, now, removed, place, rep_endpoint, replace=False)
            if holder is None:
                entry = {"name": name, "class": "", "rep_endpoint": rep_endpoint, "pub_endpoint": "",
                         "host": str(host), "pid": pid, "started": now}
                self._reserved[name] = _Record(entry, token, place, now)
        for gone in removed:
            self.server_removed.emit(gone)
        return holder

    def release(self, name: str, token: str) -> bool:
        """Drop a reservation ``token`` holds (its server failed to start); True if there was one."""
        with self._lock:
            record = self._reserved.get(name)
            if record is not None and record.token == token:
                del self._reserved[name]
                return True
            return False

    def register(self, entry: Dict[str, Any], token: str, place: str = "") -> Optional[Dict[str, Any]]:
        """Add or refresh the server ``entry`` describes; ``token`` identifies that server.

        Returns None when registered (or refreshed), else the entry of the live
        server that already has the name (nothing changes then).
        """
        if not isinstance(entry, dict):
            raise TypeError(f"a registry entry is a dict, not {type(entry).__name__}")
        name = entry.get("name")
        _check_name(name)
        clean = {key: entry.get(key) for key in ENTRY_KEYS}
        clean.update((key, entry[key]) for key in OPTIONAL_KEYS if isinstance(entry.get(key), str))
        now = time.time()
        removed: List[str] = []
        added = None
        with self._lock:
            if token in self._gone:
                return None  # a refresh that crossed its own unregistration
            record = self._records.get(name)
            if record is not None and record.token == token:
                record.seen = now
                record.entry = clean
                return None
            holder = self._holder(name, token, now, removed, place, clean.get("rep_endpoint"), replace=True)
            if holder is not None:
                return holder
            self._reserved.pop(name, None)
            self._records[name] = _Record(clean, token, place, now)
            added = dict(clean)
        for gone in removed:
            self.server_removed.emit(gone)
        logger.info("registered %s: %s at %s", name, clean.get("class"), clean.get("rep_endpoint"))
        self.server_added.emit(added)
        return None

    def unregister(self, name: str, token: str) -> bool:
        """Remove ``name`` if ``token``'s server holds it (a clean stop); True if removed."""
        now = time.time()
        with self._lock:
            self._gone[token] = now
            record = self._reserved.get(name)
            if record is not None and record.token == token:
                del self._reserved[name]
            record = self._records.get(name)
            if record is None or record.token != token:
                return False
            del self._records[name]
        logger.info("unregistered %s", name)
        self.server_removed.emit(name)
        return True

    # ---------------------------------------------------------------- expiry
    def expire(self, now: Optional[float] = None) -> List[str]:
        """Remove entries not refreshed for ``expiry`` seconds, and those of dead local processes.

        Returns the names removed (``server_removed`` is emitted for each).
        """
        now = time.time() if now is None else now
        removed: List[str] = []
        with self._lock:
            for name, record in list(self._records.items()):
                if self._is_stale(record, now):
                    del self._records[name]
                    removed.append(name)
            for name, record in list(self._reserved.items()):
                if self._is_stale(record, now):
                    del self._reserved[name]
            for token, when in list(self._gone.items()):
                if now - when > self.expiry:
                    del self._gone[token]
        for name in removed:
            logger.info("%s expired (no registration for %g s, or its process is gone)", name, self.expiry)
            self.server_removed.emit(name)
        return removed

    def _is_stale(self, record: _Record, now: float) -> bool:
        if now - record.seen > self.expiry:
            return True
        return bool(record.place) and record.place == _HERE and _pid_is_dead(record.entry.get("pid"))

    def _holder(self, name: str, token: str, now: float, removed: List[str], place: str, rep_endpoint: Any,
                replace: bool) -> Optional[Dict[str, Any]]:
        """The live holder of ``name`` other than ``token`` (stale holders are dropped).

        A holder that the newcomer succeeds (same machine, same fixed TCP
        endpoint) is no obstacle; ``replace`` drops it (the newcomer has bound).
        """
        record = self._records.get(name)
        if record is not None and record.token != token:
            succeeded = _succeeds(record, place, rep_endpoint)
            if not succeeded and not self._is_stale(record, now):
                return dict(record.entry)
            if replace or not succeeded:
                del self._records[name]
                removed.append(name)
        record = self._reserved.get(name)
        if record is not None and record.token != token:
            if not self._is_stale(record, now):
                return dict(record.entry)
            del self._reserved[name]
        return None

    def __repr__(self) -> str:
        return f"<Registry of {len(self._records)} server(s)>"


def _succeeds(record: _Record, place: str, rep_endpoint: Any) -> bool:
    """True if a server binding ``rep_endpoint`` at ``place`` proves ``record``'s server gone.

    Two live servers cannot bind one TCP port of one machine, so a newcomer that
    binds the fixed TCP endpoint a holder registered, on the holder's machine,
    succeeds it (a restart after a crash).
    """
    if not (place and place == record.place and isinstance(rep_endpoint, str)):
        return False
    if not rep_endpoint.startswith("tcp://") or rep_endpoint.endswith((":0", ":*")):
        return False
    return rep_endpoint == record.entry.get("rep_endpoint")


# ====================================================================== serving a registry
def _default_pub(rep: str) -> str:
    if rep.startswith("tcp://"):
        return rep.rsplit(":", 1)[0] + ":0"
    return rep + "-pub"


def serve_registry(endpoint: Optional[str] = None, *, expiry: float = EXPIRY, **server_kwargs: Any) -> Any:
    """Start a registry in this process and return its Server (stop it with ``stop()``).

    ``endpoint`` defaults to ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``; the
    publish endpoint defaults to a free port on the same host. Other keyword
    arguments go to :class:`pizco_qt.Server` (``pub_endpoint``, ``protocol``,
    ``allow_insecure``...). The served :class:`Registry` is ``server.served_object``.
    """
    from .server import Server

    rep = normalize_optional(endpoint) or config.registry_endpoint()
    server_kwargs.setdefault("pub_endpoint", _default_pub(rep))
    if server_kwargs.get("name"):
        raise ValueError("a registry does not register itself: drop name=")
    registry = Registry(expiry)
    server = Server(registry, rep, **server_kwargs)
    ref = weakref.ref(server)

    def sweep() -> None:  # I/O thread: hand the sweep to the registry's worker thread
        srv = ref()
        if srv is None or srv.stopped:
            return
        srv.answerer.submit(registry.expire)
        srv.io.call_later(SWEEP_PERIOD, sweep)

    server.io.call_later(SWEEP_PERIOD, sweep)
    return server


_EXAMPLES = """examples:
  pizco-registry                                  this machine only, tcp://127.0.0.1:5777
  pizco-registry tcp://127.0.0.1:0                a free port (printed on the ready line)
  PZC_KEY=secret pizco-registry tcp://0.0.0.0:5777   for a lab network, with a shared key
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pizco-registry",
        description="Serve the registry of pizco_qt servers: named servers register here,\n"
                    "Proxy.from_name() and pizco-monitor find them here.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint", nargs="?", default=None,
                        help=f"REP endpoint to bind (default: PZC_REGISTRY, else {config.DEFAULT_REGISTRY})")
    parser.add_argument("--pub", metavar="ENDPOINT", default=None,
                        help="PUB endpoint to bind (default: a free port on the same host)")
    parser.add_argument("--curve-secret", metavar="FILE", default=None,
                        help="serve with CURVE encryption using this key pair (.key_secret)")
    parser.add_argument("--curve-clients", metavar="DIR", default=None,
                        help="with --curve-secret: admit only the clients whose public keys (*.key) are here")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="allow a non-loopback endpoint with no key (PZC_KEY) and no CURVE")
    parser.add_argument("-v", "--verbose", action="store_true", help="log servers as they come and go")
    parser.add_argument("--watch-stdin", action="store_true",
                        help="stop when standard input is closed (pizco-station uses this so the registry "
                             "it starts ends with it)")
    return parser


def _watch_stdin(stop: threading.Event) -> None:
    """Set ``stop`` when standard input reaches end-of-file (the parent is gone)."""
    import os

    def run() -> None:
        try:
            fd = sys.stdin.fileno()
            while os.read(fd, 4096):
                pass
        except (AttributeError, OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=run, name="pizco-stdin-watch", daemon=True).start()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``pizco-registry [endpoint]``: serve a registry until SIGINT or SIGTERM (exit status 0)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from .limits import raise_open_files_limit

    raise_open_files_limit()  # one connection per registered server and client
    for endpoint in (args.endpoint, args.pub):
        if endpoint is not None and ("://" not in endpoint or not endpoint.split("://", 1)[1]):
            parser.error(f"{endpoint!r} is not a ZMQ endpoint (e.g. tcp://127.0.0.1:5777)")
    if args.curve_clients and not args.curve_secret:
        parser.error("--curve-clients needs --curve-secret (the registry's own key pair)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    previous = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        previous[sig] = _signal.signal(sig, on_signal)
    if args.watch_stdin:
        _watch_stdin(stop)
    try:
        kwargs: Dict[str, Any] = {"allow_insecure": args.allow_insecure}
        if args.pub:
            kwargs["pub_endpoint"] = args.pub
        try:
            if args.curve_secret:
                from .security import CurveConfig

                kwargs["curve"] = CurveConfig(args.curve_secret, args.curve_clients)
            server = serve_registry(args.endpoint, **kwargs)
        except PizcoError as exc:
            print(f"pizco-registry: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"pizco-registry ready rep={server.rep_endpoint} pub={server.pub_endpoint}", flush=True)
            while not stop.wait(0.25):
                pass
        finally:
            server.stop()
        return 0
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())

