"""A lab station: every instrument server of a machine from one TOML file, supervised.

A station file lists the servers a machine serves::

    [station]
    name = "lab-3"                          # optional, default: the file's stem
    registry = "tcp://127.0.0.1:5777"       # optional, default PZC_REGISTRY or the usual default
    start_registry = true                   # optional: start one if none answers (default true)

    [[server]]
    name = "stage"                          # registry name, required, unique in the file
    class = "mylab.stage:Stage"             # required, module:Class
    args = ["COM3"]                         # optional
    kwargs = { speed = 2.0 }                # optional
    rep = "tcp://127.0.0.1:0"               # optional, default a random loopback port
    pub = "tcp://127.0.0.1:0"               # optional
    path = "~/lab"                          # optional, prepended to the child's sys.path
    restart = "on-failure"                  # optional: "on-failure" (default), "always", "never"

:class:`Station` starts each server in its own ``python -m pizco_qt`` child (the
:mod:`pizco_qt.process` machinery: no shell, and the child stops when its
standard input closes, so no child outlives the station), registered under its
name with the station's name in its registry entry (key ``'station'``). A
supervision thread restarts a server that dies according to its ``restart``
policy, with a backoff (0.5 s, doubling, at most 30 s, reset after 60 s of
healthy running), on the endpoints it got at its first start, so existing
proxies reconnect on their own. A server that exits unexpectedly 5 times within
60 s is marked ``'failed'`` and left down. ``pizco-station FILE [--gui]
[--dry-run]`` is the command line.

Thread affinity: every public method of :class:`Station` may be called from any
thread; ``start``, ``stop``, ``start_server``, ``stop_server`` and ``restart``
block the caller (each with a deadline). The supervision thread never blocks
on a child.
"""
from __future__ import annotations

import argparse
import ast
import collections
import logging
import os
import re
import signal as _signal
import sys
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from . import config
from ._foreground import stop_on_signals
from .process import ChildProcess, ProcessStartError, _child_env

logger = logging.getLogger(__name__)

__all__ = ["Station", "StationFileError", "load_file", "main", "STATES", "RESTART_POLICIES",
           "SERVER_KEYS", "STATION_KEYS", "Backoff"]

#: The states of a station's server.
STATES = ("starting", "running", "restarting", "failed", "stopped")
#: The values of a server's ``restart`` key (systemd's meaning).
RESTART_POLICIES = ("on-failure", "always", "never")
#: The keys of a ``[[server]]`` table.
SERVER_KEYS = ("name", "class", "args", "kwargs", "rep", "pub", "path", "restart")
#: The keys of the ``[station]`` table.
STATION_KEYS = ("name", "registry", "start_registry")
#: The ready line printed by ``pizco-station``.
READY_FORMAT = "pizco-station ready {name} servers={count}"

_CLASS_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# ====================================================================== the file
class StationFileError(ValueError):
    """A station file (or a list of server dicts) is invalid.

    ``str()`` is one line naming the key (or the duplicated name) and, when
    known, the file and line. Attributes: ``key`` (the key at fault, or None),
    ``line`` (1-based line in the file, or None), ``path`` (the file, or None).
    """

    def __init__(self, message: str, key: Optional[str] = None, line: Optional[int] = None,
                 path: Optional[str] = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)
        self.key = key
        self.line = line
        self.path = path


class _Lines:
    """Where keys are in the TOML text (tomllib gives no positions once parsed)."""

    _HEADER = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]")

    def __init__(self, text: str) -> None:
        self.keys: Dict[Tuple[str, int], Dict[str, int]] = {}
        self.headers: Dict[Tuple[str, int], int] = {}
        current: Tuple[str, int] = ("", 0)
        servers = 0
        for number, line in enumerate(text.splitlines(), start=1):
            m = self._HEADER.match(line)
            if m:
                table = m.group(2).strip().strip('"\'')
                if table == "server" and m.group(1):
                    current = ("server", servers)
                    servers += 1
                else:
                    current = (table, 0)
                self.headers.setdefault(current, number)
                continue
            k = re.match(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*=", line)
            if k:
                self.keys.setdefault(current, {}).setdefault(k.group(1).strip('"\''), number)

    def of(self, table: str, index: int, key: Optional[str]) -> Optional[int]:
        if key is not None:
            line = self.keys.get((table, index), {}).get(key)
            if line is not None:
                return line
        return self.headers.get((table, index))


def _server_label(index: int, spec: Dict[str, Any]) -> str:
    name = spec.get("name")
    if isinstance(name, str) and name:
        return f"[[server]] {name!r}"
    return f"[[server]] #{index + 1}"


def _is_literal(value: Any) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _endpoint_ok(value: Any) -> bool:
    return isinstance(value, str) and "://" in value and bool(value.split("://", 1)[1])


def _check_station(table: Any, where: Any) -> Dict[str, Any]:
    """Validate the ``[station]`` table; ``where(key)`` makes the error."""
    if not isinstance(table, dict):
        raise where("station", "[station] must be a table")
    for key in table:
        if key not in STATION_KEYS:
            raise where(key, f"[station]: unknown key {key!r} (allowed: {', '.join(STATION_KEYS)})")
    name = table.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise where("name", f"[station]: 'name' must be a non-empty string, not {name!r}")
    registry = table.get("registry")
    if registry is not None and not _endpoint_ok(registry):
        raise where("registry", f"[station]: 'registry' must be a ZMQ endpoint such as "
                                f"\"tcp://127.0.0.1:5777\", not {registry!r}")
    if registry is not None and registry.startswith("tcp://") and registry.endswith((":0", ":*")):
        raise where("registry", f"[station]: 'registry' needs a fixed port (its servers must find it), "
                                f"not {registry!r}")
    start_registry = table.get("start_registry", True)
    if not isinstance(start_registry, bool):
        raise where("start_registry", f"[station]: 'start_registry' must be true or false, not {start_registry!r}")
    return {"name": name, "registry": registry, "start_registry": start_registry}


def _check_servers(servers: Any, where: Any, base_dir: Optional[str]) -> List[Dict[str, Any]]:
    """Validate the server dicts; ``where(key, message, index)`` makes the error. Returns clean copies."""
    if not isinstance(servers, (list, tuple)):
        raise where("server", "servers are a list of [[server]] tables (write [[server]], not [server])", None)
    if not servers:
        raise where("server", "no server: add at least one [[server]] table with 'name' and 'class'", None)
    clean: List[Dict[str, Any]] = []
    seen: Dict[str, int] = {}
    for i, spec in enumerate(servers):
        if not isinstance(spec, dict):
            raise where("server", f"[[server]] #{i + 1} must be a table, not {type(spec).__name__}", i)
        label = _server_label(i, spec)
        for key in spec:
            if key not in SERVER_KEYS:
                raise where(key, f"{label}: unknown key {key!r} (allowed: {', '.join(SERVER_KEYS)})", i)
        for key in ("name", "class"):
            if key not in spec:
                raise where(key, f"{label}: missing key {key!r}", i)
        name = spec["name"]
        if not isinstance(name, str) or not name.strip() or "+" in name:
            raise where("name", f"{label}: 'name' must be a non-empty string without '+', not {name!r}", i)
        if name in seen:
            raise where("name", f"{label}: duplicate name {name!r} (also [[server]] #{seen[name] + 1}); "
                                "each server needs its own registry name", i)
        seen[name] = i
        cls = spec["class"]
        if not isinstance(cls, str) or not _CLASS_RE.match(cls):
            raise where("class", f"{label}: 'class' must be \"module:Class\" (e.g. \"mylab.stage:Stage\"), "
                                 f"not {cls!r}", i)
        args = spec.get("args", [])
        if not isinstance(args, (list, tuple)) or not _is_literal(list(args)):
            raise where("args", f"{label}: 'args' must be an array of plain values (numbers, strings, "
                                f"booleans, arrays, tables), not {args!r}", i)
        kwargs = spec.get("kwargs", {})
        if (not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs)
                or not _is_literal(dict(kwargs))):
            raise where("kwargs", f"{label}: 'kwargs' must be a table of plain values "
                                  f"(e.g. {{ speed = 2.0 }}), not {kwargs!r}", i)
        for key in ("rep", "pub"):
            value = spec.get(key)
            if value is not None and not _endpoint_ok(value):
                raise where(key, f"{label}: {key!r} must be a ZMQ endpoint such as \"tcp://127.0.0.1:0\", "
                                 f"not {value!r}", i)
        path = spec.get("path")
        if path is not None:
            if not isinstance(path, str) or not path.strip():
                raise where("path", f"{label}: 'path' must be a directory name, not {path!r}", i)
            path = os.path.expanduser(path)
            if base_dir is not None and not os.path.isabs(path):
                path = os.path.join(base_dir, path)
            path = os.path.abspath(path)
        restart = spec.get("restart", "on-failure")
        if restart not in RESTART_POLICIES:
            raise where("restart", f"{label}: 'restart' must be one of {', '.join(map(repr, RESTART_POLICIES))}, "
                                   f"not {restart!r}", i)
        clean.append({"name": name, "class": cls, "args": list(args), "kwargs": dict(kwargs),
                      "rep": spec.get("rep"), "pub": spec.get("pub"), "path": path, "restart": restart})
    return clean


def _toml_loads(text: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    return tomllib.loads(text)


def _toml_error_types() -> Tuple[type, ...]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    return (tomllib.TOMLDecodeError,)


def load_file(path: str) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Read and validate a station file; returns ``(station, servers)`` as clean dicts.

    ``station`` has ``name`` (default: the file's stem), ``registry`` and
    ``start_registry``; each server dict has every key of ``SERVER_KEYS``
    (``path`` expanded and made absolute relative to the file's directory).
    Nothing is imported and nothing is bound.

    Raises
    ------
    StationFileError
        (a ValueError) for a missing or unreadable file, bad TOML, an unknown key,
        a missing ``name`` or ``class``, a duplicate name or a bad value; its
        message names the key (or the duplicated name) and the line.
    """
    shown = os.fspath(path)
    try:
        with open(shown, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StationFileError(f"not UTF-8 text ({exc})", path=shown) from None
    except OSError as exc:
        raise StationFileError(f"cannot read the station file: {exc.strerror or exc}", path=shown) from None
    try:
        data = _toml_loads(text)
    except _toml_error_types() as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise StationFileError(f"bad TOML: {exc}", line=int(m.group(1)) if m else None, path=shown) from None
    lines = _Lines(text)
    for key in data:
        if key not in ("station", "server"):
            raise StationFileError(f"unknown key {key!r} (a station file has a [station] table and "
                                   "[[server]] tables)", key=key, line=lines.of("", 0, key) or lines.of(key, 0, None),
                                   path=shown)

    def station_error(key: str, message: str) -> StationFileError:
        return StationFileError(message, key=key, line=lines.of("station", 0, key), path=shown)

    def server_error(key: str, message: str, index: Optional[int]) -> StationFileError:
        line = lines.of("server", index, key) if index is not None else lines.headers.get(("server", 0))
        return StationFileError(message, key=key, line=line, path=shown)

    station = _check_station(data.get("station", {}), station_error)
    if station["name"] is None:
        station["name"] = os.path.splitext(os.path.basename(shown))[0]
    base_dir = os.path.dirname(os.path.abspath(shown))
    servers = _check_servers(data.get("server", []), server_error, base_dir)
    return station, servers


# ====================================================================== restart bookkeeping
class Backoff:
    """When to restart a server that exited, and when to give up (no clock of its own).

    Delays start at ``initial`` seconds and double up to ``maximum``; a run of
    ``healthy`` seconds resets them. ``limit`` unexpected exits within
    ``window`` seconds mean failed.
    """

    def __init__(self, initial: float = config.DEFAULTS.restart_delay,
                 maximum: float = config.DEFAULTS.restart_delay_max,
                 healthy: float = config.DEFAULTS.restart_healthy_after,
                 limit: int = config.DEFAULTS.restart_failure_limit,
                 window: float = config.DEFAULTS.restart_failure_window) -> None:
        self.initial, self.maximum, self.healthy = initial, maximum, healthy
        self.limit, self.window = limit, window
        self.delay = initial
        self.exits: Deque[float] = collections.deque()

    def reset(self) -> None:
        """A fresh count (a start or restart asked for by hand)."""
        self.delay = self.initial
        self.exits.clear()

    def exited(self, now: float, ran_for: Optional[float]) -> Optional[float]:
        """Record an unexpected exit at ``now`` after ``ran_for`` seconds of running (None: never ready).

        Returns the delay before the next start, or None when the server has failed.
        """
        if ran_for is not None and ran_for >= self.healthy:
            self.reset()
        self.exits.append(now)
        while self.exits and now - self.exits[0] > self.window:
            self.exits.popleft()
        if len(self.exits) >= self.limit:
            return None
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay


def _describe_exit(rc: Optional[int]) -> str:
    if rc is None:
        return "did not exit"
    if rc < 0:
        try:
            return f"was killed by signal {_signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


class _Managed:
    """One server of a station: its spec, its current child and its bookkeeping."""

    def __init__(self, spec: Dict[str, Any], backoff: Backoff) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.state = "stopped"
        self.child: Optional[ChildProcess] = None
        self.rep_endpoint: Optional[str] = None   # chosen at the first start, kept
        self.pub_endpoint: Optional[str] = None
        self.restarts = 0
        self.started_at: Optional[float] = None   # monotonic time it became ready
        self.spawned_at = 0.0
        self.next_start = 0.0
        self.last_error: Optional[str] = None
        self.backoff = backoff
        self.busy = False                          # a start/stop by hand is in progress

    def status(self) -> Dict[str, Any]:
        running = self.state == "running" and self.started_at is not None
        child = self.child
        return {"name": self.name, "class": self.spec["class"], "state": self.state,
                "pid": child.pid if child is not None and self.state in ("starting", "running") else None,
                "rep_endpoint": self.rep_endpoint or self.spec.get("rep"),
                "pub_endpoint": self.pub_endpoint or self.spec.get("pub"),
                "restarts": self.restarts,
                "uptime": (time.monotonic() - self.started_at) if running else None,
                "last_error": self.last_error, "restart": self.spec["restart"]}


# ====================================================================== the station
class Station:
    """The servers of a lab machine, each in its own supervised child process.

    Parameters
    ----------
    servers : list of dict
        One dict per server with the keys of a ``[[server]]`` table (``name`` and
        ``class`` required).
    name : str, optional
        The station's name, carried in each server's registry entry (key
        ``'station'``); default ``"station"``.
    registry : str, optional
        The registry endpoint; default ``PZC_REGISTRY``, else ``tcp://127.0.0.1:5777``.
    start_registry : bool
        Start a registry (a child of the station) if none answers.

    Raises
    ------
    ValueError
        (a :class:`StationFileError`) naming the key of a bad server dict.

    Thread affinity: any thread.
    """

    #: Copy the children's output to this process's stdout/stderr, each line prefixed with
    #: ``[station/server pid]`` (``pizco-station -v``); otherwise it is logged at DEBUG.
    relay_output = False

    def __init__(self, servers: Sequence[Dict[str, Any]], name: Optional[str] = None,
                 registry: Optional[str] = None, start_registry: bool = True,
                 settings: Optional[config.Settings] = None) -> None:
        def server_error(key: str, message: str, index: Optional[int]) -> StationFileError:
            return StationFileError(message, key=key)

        def station_error(key: str, message: str) -> StationFileError:
            return StationFileError(message, key=key)

        checked = _check_station({"name": name if name is not None else "station", "registry": registry,
                                  "start_registry": start_registry}, station_error)
        specs = _check_servers(list(servers) if isinstance(servers, (list, tuple)) else servers,
                               server_error, None)
        self.name: str = checked["name"]
        #: Its timings: ``process_start_timeout`` (a server's ready line), ``child_stop_timeout``
        #: (a clean exit before a kill), ``supervise_interval``, the ``restart_*`` backoff.
        self.settings = settings if settings is not None else config.Settings.from_environment()
        self.registry: str = registry or config.registry_endpoint()
        self.start_registry = bool(start_registry)
        self._lock = threading.RLock()
        self._servers: Dict[str, _Managed] = {spec["name"]: _Managed(spec, self._new_backoff()) for spec in specs}
        self._registry_child: Optional[ChildProcess] = None
        self._thread: Optional[threading.Thread] = None
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._started = False
        self._sweeps = 0  # looks of the supervision thread so far (tests wait on it)

    @classmethod
    def from_file(cls, path: Any, settings: Optional[config.Settings] = None) -> "Station":
        """The station described by the TOML file at ``path`` (see the module docstring).

        Raises
        ------
        ValueError
            (a :class:`StationFileError`) naming the key and line of a bad file.
        """
        station, servers = load_file(path)
        return cls(servers, name=station["name"], registry=station["registry"],
                   start_registry=station["start_registry"], settings=settings)

    def _new_backoff(self) -> Backoff:
        s = self.settings
        return Backoff(s.restart_delay, s.restart_delay_max, s.restart_healthy_after, s.restart_failure_limit,
                       s.restart_failure_window)

    # ---------------------------------------------------------------- queries
    @property
    def names(self) -> List[str]:
        """The servers' names, in the file's order."""
        return list(self._servers)

    def status(self) -> List[Dict[str, Any]]:
        """One dict per server: ``name``, ``class``, ``state``, ``pid``, ``rep_endpoint``,
        ``pub_endpoint``, ``restarts``, ``uptime``, ``last_error`` and ``restart`` (its policy)."""
        with self._lock:
            return [m.status() for m in self._servers.values()]

    def __repr__(self) -> str:
        states = collections.Counter(m.state for m in self._servers.values())
        return f"<Station {self.name!r} {dict(states)}>"

    def _get(self, name: str) -> _Managed:
        try:
            return self._servers[name]
        except KeyError:
            raise KeyError(f"the station {self.name!r} has no server named {name!r}") from None

    # ---------------------------------------------------------------- starting
    def start(self) -> "Station":
        """Start the registry if needed and every server; return once all are ready.

        Raises
        ------
        ProcessStartError
            Naming the server that could not start, ending with its stderr (the
            others are stopped then).
        RuntimeError
            If the station was already started.
        """
        with self._lock:
            if self._started:
                raise RuntimeError(f"the station {self.name!r} is already started")
            self._started = True
            self._closing.clear()
        try:
            self._ensure_registry()
            with self._lock:
                for m in self._servers.values():
                    m.backoff.reset()
                    self._spawn(m)
            for m in self._servers.values():
                self._wait_ready(m)
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._supervise, name=f"pizco-station {self.name}", daemon=True)
        self._thread.start()
        logger.info("station %s: %d server(s) ready", self.name, len(self._servers))
        return self

    def __enter__(self) -> "Station":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _registry_answers(self) -> bool:
        timeout = self.settings.station_registry_probe
        from .registry_client import RegistryUnavailable, lookup

        try:
            lookup("pizco-station probe", self.registry, timeout=timeout)
        except KeyError:
            return True
        except RegistryUnavailable:
            return False
        except Exception as exc:  # something answers, but not as a registry does
            logger.warning("station %s: the registry at %s: %s", self.name, self.registry, exc)
            return True
        return True

    def _ensure_registry(self) -> None:
        if not self.start_registry or self._registry_answers():
            return
        argv = [sys.executable, "-m", "pizco_qt.registry", self.registry, "--watch-stdin"]
        child = ChildProcess(argv, _child_env(None), "registry", settings=self.settings)
        self._registry_child = child
        deadline = time.monotonic() + self.settings.process_start_timeout
        while not self._registry_answers():
            if not child.alive() or time.monotonic() > deadline:
                child.stop(timeout=self.settings.stop_timeout)
                self._registry_child = None
                raise ProcessStartError(f"the station {self.name!r} could not start a registry at {self.registry} "
                                        f"({_describe_exit(child.returncode)})", child.returncode,
                                        child.stderr_tail())
            self._closing.wait(self.settings.poll_interval)
        logger.info("station %s: started a registry at %s (pid %d)", self.name, self.registry, child.pid)

    def _argv(self, m: _Managed) -> List[str]:
        spec = m.spec
        rep = m.rep_endpoint or spec["rep"] or "tcp://127.0.0.1:0"
        argv = [sys.executable, "-m", "pizco_qt", rep]
        pub = m.pub_endpoint or spec["pub"]
        if pub:
            argv.append(pub)
        argv += ["--serve", spec["class"], "--args", repr(tuple(spec["args"])), "--kwargs", repr(spec["kwargs"]),
                 "--name", m.name, "--watch-stdin"]
        if spec["path"]:
            argv += ["-p", spec["path"]]
        return argv

    def _spawn(self, m: _Managed) -> None:
        """Start ``m``'s child (lock held); it is 'starting' until its ready line."""
        env = _child_env(None)
        env["PZC_REGISTRY"] = self.registry
        env[config.STATION_ENV] = self.name
        m.child = ChildProcess(self._argv(m), env, f"{self.name}/{m.name}", verbose=self.relay_output,
                               settings=self.settings)
        m.child.stop_timeout = self.settings.child_stop_timeout
        m.spawned_at = time.monotonic()
        m.started_at = None
        m.state = "starting"
        logger.info("station %s: starting %s (pid %d)", self.name, m.name, m.child.pid)

    def _became_ready(self, m: _Managed) -> None:
        child = m.child
        assert child is not None
        if m.rep_endpoint is None:
            m.rep_endpoint, m.pub_endpoint = child.rep_endpoint, child.pub_endpoint
        m.state = "running"
        m.started_at = time.monotonic()
        logger.info("station %s: %s running (pid %d) at %s", self.name, m.name, child.pid, m.rep_endpoint)

    def _wait_ready(self, m: _Managed) -> None:
        """Block until ``m``'s child is ready (start and start_server); raise naming it if it fails."""
        child = m.child
        assert child is not None
        try:
            child.wait_ready(self.settings.process_start_timeout)
        except ProcessStartError as exc:
            child.stop(timeout=self.settings.reaped_wait)  # reaped already: this closes its pipes
            with self._lock:
                if m.child is child:
                    m.child = None
                if self._closing.is_set():  # the station stopped it while it started
                    m.state = "stopped"
                else:
                    m.state = "failed"
                    m.last_error = (f"could not start: {_describe_exit(exc.returncode)}\n"
                                    + _tail(exc.stderr, self.settings.station_error_lines)).rstrip()
            raise ProcessStartError(f"the station {self.name!r} could not start the server {m.name!r} "
                                    f"({m.spec['class']}): {_describe_exit(exc.returncode)} before it was ready",
                                    exc.returncode, exc.stderr) from None
        with self._lock:
            if m.child is child:
                self._became_ready(m)

    # ---------------------------------------------------------------- supervision
    def _supervise(self) -> None:
        while not self._closing.is_set():
            try:
                with self._lock:
                    now = time.monotonic()
                    for m in self._servers.values():
                        if not m.busy:
                            self._check(m, now)
            except Exception:  # the supervisor must not die
                logger.exception("station %s: supervision error", self.name)
            self._sweeps += 1
            self._wake.wait(self.settings.supervise_interval)
            self._wake.clear()

    def _check(self, m: _Managed, now: float) -> None:
        """One look at ``m`` (supervision thread, lock held)."""
        child = m.child
        if m.state == "restarting":
            if now >= m.next_start:
                m.restarts += 1
                try:
                    self._spawn(m)
                except OSError as exc:
                    self._exited(m, None, f"could not be started again: {exc}", "")
            return
        if child is None or m.state not in ("starting", "running"):
            return
        rc = child.returncode
        if m.state == "starting":
            if child.is_ready():
                self._became_ready(m)
            elif rc is None and now - m.spawned_at > self.settings.process_start_timeout:
                child.popen.kill()
                self._exited(m, child, f"was not ready within {self.settings.process_start_timeout:g} s (killed)", None)
                return
        if rc is not None:
            self._exited(m, child, _describe_exit(rc), rc)

    def _exited(self, m: _Managed, child: Optional[ChildProcess], what: str, rc: Optional[int]) -> None:
        """``m``'s child ended without being asked: apply its restart policy (lock held)."""
        now = time.monotonic()
        ran_for = (now - m.started_at) if m.started_at is not None else None
        tail = ""
        if child is not None:
            child.wait_stderr(self.settings.reaped_wait)
            tail = _tail(child.stderr_tail(), self.settings.station_error_lines)
            child.stop(timeout=self.settings.reaped_wait)  # reaps it, closes its pipes, joins its drains
        m.child = None
        m.started_at = None
        policy = m.spec["restart"]
        failed = rc != 0
        if failed:
            m.last_error = f"{what}" + (f"\n{tail}" if tail else "")
        logger.warning("station %s: %s %s%s", self.name, m.name, what, f"; last stderr lines:\n{tail}" if tail else "")
        if policy == "never" or (policy == "on-failure" and not failed):
            m.state = "failed" if failed else "stopped"
            return
        delay = m.backoff.exited(now, ran_for)
        if delay is None:
            m.state = "failed"
            m.last_error = (f"exited unexpectedly {len(m.backoff.exits)} times within "
                            f"{m.backoff.window:g} s; left down (start it again by hand). Last: {what}"
                            + (f"\n{tail}" if tail else ""))
            logger.error("station %s: %s failed: %s", self.name, m.name, m.last_error)
            return
        m.state = "restarting"
        m.next_start = now + delay
        logger.info("station %s: restarting %s in %g s", self.name, m.name, delay)

    # ---------------------------------------------------------------- acting on one server
    def _claim(self, name: str) -> _Managed:
        m = self._get(name)
        deadline = time.monotonic() + self.settings.child_stop_timeout + self.settings.process_start_timeout
        while True:
            with self._lock:
                if not m.busy:
                    m.busy = True
                    return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server {name!r} is busy (another start or stop is in progress)")
            threading.Event().wait(self.settings.poll_interval)

    def stop_server(self, name: str) -> None:
        """Stop the server ``name`` cleanly (killed after ``settings.child_stop_timeout`` s); the supervisor leaves it stopped.

        Raises
        ------
        KeyError
            For a name the station does not have.
        """
        m = self._claim(name)
        try:
            self._stop_one(m)
        finally:
            with self._lock:
                m.busy = False

    def _stop_one(self, m: _Managed) -> None:
        with self._lock:
            child, m.child = m.child, None
            m.started_at = None
            if m.state != "failed" or child is not None:
                m.state = "stopped"
        if child is not None:
            rc = child.stop(self.settings.child_stop_timeout)
            logger.info("station %s: stopped %s (status %s)", self.name, m.name, rc)

    def start_server(self, name: str) -> None:
        """Start the server ``name`` (with a fresh failure count) and return once it is ready.

        Does nothing if it is running; a server waiting for its restart starts at once.

        Raises
        ------
        KeyError
            For a name the station does not have.
        ProcessStartError
            If it could not start (it is then 'failed', with ``last_error``).
        """
        m = self._claim(name)
        try:
            with self._lock:
                if not self._started or self._closing.is_set():
                    raise RuntimeError(f"the station {self.name!r} is not running")
                m.backoff.reset()
                if m.state in ("running", "starting") and m.child is not None and m.child.alive():
                    if m.state == "running":
                        return
                else:
                    self._spawn(m)
            self._wait_ready(m)
        finally:
            with self._lock:
                m.busy = False

    def restart(self, name: str) -> None:
        """Stop the server ``name`` cleanly and start it again on the same endpoints (a fresh failure count).

        Manual restarts do not count in ``restarts``.
        """
        self.stop_server(name)
        self.start_server(name)

    # ---------------------------------------------------------------- stopping
    def stop(self) -> None:
        """Stop the supervision, then every server cleanly (in parallel), then the registry it started.

        Idempotent; each child gets ``settings.child_stop_timeout`` seconds to run its cleanup
        before it is killed.
        """
        self._closing.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.settings.child_stop_timeout)
        self._thread = None
        stoppers = []
        with self._lock:
            for m in self._servers.values():
                child, m.child = m.child, None
                if m.state != "failed" or child is not None:
                    m.state = "stopped"
                m.started_at = None
                if child is not None:
                    t = threading.Thread(target=child.stop, args=(self.settings.child_stop_timeout,), daemon=True,
                                         name=f"pizco-station-stop {m.name}")
                    t.start()
                    stoppers.append(t)
        for t in stoppers:
            t.join(self.settings.child_stop_timeout + self.settings.reap_timeout)
        registry, self._registry_child = self._registry_child, None
        if registry is not None:
            registry.stop(self.settings.child_stop_timeout)
        with self._lock:
            self._started = False


def _tail(text: str, count: int) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return "\n".join(lines[-count:])


# ====================================================================== the command line
_EXAMPLES = """\
examples:
  pizco-station lab.toml              start every server of lab.toml, restart any that dies
  pizco-station lab.toml --gui        the same, with the station window
  pizco-station lab.toml --dry-run    check the file and list its servers (starts nothing)

Once every server answers it prints "pizco-station ready <name> servers=<N>".
Ctrl+C or SIGTERM stops every server cleanly (exit status 0). A bad file exits
with status 2, a server that cannot start with status 1.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pizco-station``."""
    parser = argparse.ArgumentParser(
        prog="pizco-station",
        description="Serve every instrument server of a station file, each in its own process, "
                    "supervised and restarted when it dies.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="the station file (TOML)")
    parser.add_argument("--gui", action="store_true", help="show the station window")
    parser.add_argument("--dry-run", action="store_true",
                        help="only check the file and print its servers (imports nothing, binds nothing)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what the supervisor does and show the servers' output, each line "
                             "prefixed with [station/server pid]")
    return parser


def _error(message: str, status: int) -> int:
    first, _, rest = str(message).partition("\n")
    sys.stderr.write(f"pizco-station: error: {first}\n" + (rest + "\n" if rest else ""))
    sys.stderr.flush()
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pizco-station``; returns the exit status (0 after a clean stop, 1 if a server
    cannot start, 2 for a bad file)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        station = Station.from_file(args.file)
    except StationFileError as exc:
        return _error(str(exc), 2)
    station.relay_output = args.verbose
    if args.dry_run:
        for entry in station.status():
            print(f"{entry['name']} {entry['class']}")
        return 0
    with stop_on_signals() as stop:
        try:
            station.start()
        except ProcessStartError as exc:
            return _error(str(exc), 1)
        try:
            if args.gui:
                return _run_gui(station, stop)
            print(READY_FORMAT.format(name=station.name, count=len(station.names)), flush=True)
            while not stop.wait(station.settings.interrupt_check_interval):
                pass
            return 0
        finally:
            station.stop()


def _run_gui(station: Station, stop: threading.Event) -> int:
    from qtpy import QtCore, QtWidgets

    from .apps.station import StationWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1] or ["pizco-station"])
    app.setApplicationName("pizco-station")
    window = StationWindow(station)
    window.show()
    print(READY_FORMAT.format(name=station.name, count=len(station.names)), flush=True)
    tick = QtCore.QTimer()

    def check() -> None:  # Python sees SIGINT/SIGTERM only between Qt events: wake up regularly
        if stop.is_set():
            window.close_without_asking()

    tick.timeout.connect(check)
    tick.start(round(station.settings.interrupt_check_interval * 1000))
    window.closed.connect(app.quit)
    run = getattr(app, "exec_", None) or app.exec
    run()
    tick.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
