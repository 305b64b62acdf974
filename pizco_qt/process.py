"""serve_in_process: serve a new object in a child ``python -m pizco_qt`` process.

The parent starts ``sys.executable -P -m pizco_qt`` directly (no shell, no
terminal; ``-P`` keeps the working directory off the child's sys.path), passes
the sys.path root the class's module was imported from with ``-p``, and the class and its constructor arguments as ``--serve module:Class
--args LITERAL --kwargs LITERAL``. It reads the child's ready line
``pizco-server ready rep=<endpoint> pub=<endpoint>`` with a deadline, and
keeps draining the child's stdout and stderr afterwards (the last stderr lines
go into the error of a failed start). The parent holds the write end of a pipe
on the child's standard input; the child stops when it reads end-of-file, so it
exits when the parent dies, however it dies.

Thread affinity: ``serve_in_process`` blocks the calling thread until the child
is ready; two daemon threads per child drain its output; ``ChildProcess.stop``
may be called from any thread.
"""
from __future__ import annotations

import ast
import atexit
import collections
import logging
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

from .endpoints import normalize_optional
from .config import Settings
from .errors import PizcoError
from .protocol import Protocol

logger = logging.getLogger(__name__)

__all__ = ["serve_in_process", "ChildProcess", "ProcessStartError", "READY_RE", "class_path_root"]

#: The child's ready line (stdout); the endpoints are as the server bound them.
READY_RE = re.compile(r"^pizco-server ready rep=(?P<rep>\S+) pub=(?P<pub>\S+)\s*$")

_live: Set["ChildProcess"] = set()
_live_lock = threading.Lock()


class ProcessStartError(PizcoError):
    """A server process failed to start; ``str()`` ends with the last lines of its stderr.

    Attributes
    ----------
    returncode : int or None
        The child's exit status (None if it was still running and had to be killed).
    stderr : str
        The last lines the child wrote to stderr.
    """

    def __init__(self, message: str, returncode: Optional[int] = None, stderr: str = "") -> None:
        text = message
        if stderr.strip():
            text += "\n--- last lines of the server process's stderr ---\n" + stderr.rstrip()
        else:
            text += " (the server process wrote nothing to stderr)"
        super().__init__(text)
        self.returncode = returncode
        self.stderr = stderr


class ChildProcess:
    """A running ``python -m pizco_qt`` child: its Popen, output drains and stdin lifeline.

    Thread affinity: any thread.
    """

    def __init__(self, argv: List[str], env: Dict[str, str], label: str, verbose: bool = False,
                 settings: Optional[Settings] = None) -> None:
        settings = settings if settings is not None else Settings.from_environment()
        self.label = label
        self.verbose = verbose
        self.rep_endpoint = ""
        self.pub_endpoint = ""
        self._tail: Deque[str] = collections.deque(maxlen=settings.stderr_tail)
        self._ready = threading.Event()
        self._stdout_closed = threading.Event()
        self._stopping = False
        self.settings = settings
        #: Seconds ``stop()`` waits for a clean exit before it kills the child.
        self.stop_timeout = settings.child_stop_timeout
        self._stop_lock = threading.Lock()
        kwargs: Dict[str, Any] = {}
        if os.name == "posix":
            # Ctrl+C in the parent's terminal must not hit the child before the parent
            # has stopped it cleanly; the stdin pipe still ends it if the parent dies.
            kwargs["start_new_session"] = True
        else:  # pragma: no cover - Windows
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, close_fds=True, **kwargs)
        self.pid = self.popen.pid
        with _live_lock:
            _live.add(self)
        self._out_thread = threading.Thread(target=self._drain_stdout, daemon=True,
                                            name=f"pizco-child-stdout {self.pid}")
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True,
                                            name=f"pizco-child-stderr {self.pid}")
        self._out_thread.start()
        self._err_thread.start()

    # ---------------------------------------------------------------- output
    def _drain_stdout(self) -> None:
        stream = self.popen.stdout
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not self._ready.is_set():
                    m = READY_RE.match(line)
                    if m:
                        self.rep_endpoint, self.pub_endpoint = m.group("rep"), m.group("pub")
                        self._ready.set()
                        continue
                self._relay(line, sys.stdout)
        except (OSError, ValueError):
            pass
        finally:
            self._stdout_closed.set()
            self._reap_when_done()

    def _drain_stderr(self) -> None:
        stream = self.popen.stderr
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._tail.append(line)
                self._relay(line, sys.stderr)
        except (OSError, ValueError):
            pass

    def _relay(self, line: str, stream: Any) -> None:
        if self.verbose:
            try:
                stream.write(f"[{self.label} {self.pid}] {line}\n")
                stream.flush()
            except Exception:
                pass
        else:
            logger.debug("[%s %d] %s", self.label, self.pid, line)

    def _reap_when_done(self) -> None:
        """The child closed its stdout: it is exiting. Reap it so no zombie is left."""
        try:
            rc = self.popen.wait(self.settings.reap_timeout)
        except subprocess.TimeoutExpired:
            return  # still running with a closed stdout; stop() will reap it
        if self._ready.is_set() and not self._stopping and rc != 0:
            self._err_thread.join(self.settings.stderr_drain_timeout)
            logger.warning("the server process %d (%s) exited with status %s; last stderr lines:\n%s",
                           self.pid, self.label, rc, self.stderr_tail())
        self._forget()

    def stderr_tail(self) -> str:
        """The last lines the child wrote to stderr."""
        return "\n".join(self._tail)

    # ---------------------------------------------------------------- state
    @property
    def returncode(self) -> Optional[int]:
        """The exit status, or None while the child runs."""
        return self.popen.poll()

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.popen.poll() is None

    def is_ready(self) -> bool:
        """Whether the child printed its ready line."""
        return self._ready.is_set()

    def wait_stderr(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until everything the child wrote to stderr is read."""
        self._err_thread.join(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Block until the ready line arrives; raise ProcessStartError if the child dies or is late."""
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            if self._stdout_closed.is_set() or self.popen.poll() is not None:
                break
            self._ready.wait(min(self.settings.poll_interval, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
        if self._ready.is_set():
            return
        if self.popen.poll() is None and not self._stdout_closed.is_set():
            self._kill()
            raise ProcessStartError(
                f"the server process for {self.label} was not ready within {timeout:g} s "
                f"(pid {self.pid}; killed)", self.popen.returncode, self._final_stderr())
        try:
            rc = self.popen.wait(self.settings.reap_timeout)
        except subprocess.TimeoutExpired:  # stdout closed but still running
            self._kill()
            rc = self.popen.returncode
        self._forget_if_dead()
        raise ProcessStartError(
            f"the server process for {self.label} exited with status {rc} before it was ready",
            rc, self._final_stderr())

    def _kill(self) -> None:
        """Kill and reap a child that failed to start (no clean stop is owed)."""
        with self._stop_lock:
            self._stopping = True
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(self.settings.reap_timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
            logger.error("the server process %d could not be reaped", self.pid)
        self.stop(timeout=self.settings.poll_interval)  # reaped: this closes the pipes and joins the drains

    def _final_stderr(self) -> str:
        self._err_thread.join(self.settings.stderr_drain_timeout)
        return self.stderr_tail()

    # ---------------------------------------------------------------- stopping
    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """End the child: close its stdin (it stops on EOF), wait up to ``timeout`` s, then kill and reap.

        ``timeout`` defaults to ``stop_timeout`` (5 s). Idempotent; returns the exit status.
        """
        if timeout is None:
            timeout = self.stop_timeout
        with self._stop_lock:
            self._stopping = True
            stdin = self.popen.stdin
            if stdin is not None and not stdin.closed:
                try:
                    stdin.close()
                except OSError:
                    pass
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the server process %d (%s) did not stop within %g s; killing it",
                           self.pid, self.label, timeout)
            self.popen.kill()
            try:
                self.popen.wait(self.settings.reap_timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
                logger.error("the server process %d could not be reaped", self.pid)
                return None
        self._out_thread.join(self.settings.stderr_drain_timeout)
        self._err_thread.join(self.settings.stderr_drain_timeout)
        for stream in (self.popen.stdout, self.popen.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._forget()
        return self.popen.returncode

    def _forget_if_dead(self) -> None:
        if self.popen.poll() is not None:
            self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.popen.returncode}"
        return f"<ChildProcess {self.pid} {self.label} {self.rep_endpoint or '?'} {state}>"


def _stop_all_children() -> None:
    with _live_lock:
        children = list(_live)
    for child in children:
        try:
            child.stop(timeout=child.settings.stop_timeout)
        except Exception:
            logger.debug("stopping %r at exit", child, exc_info=True)


atexit.register(_stop_all_children)


# ------------------------------------------------------------------ helpers
def class_path_root(cls: type) -> Optional[str]:
    """The sys.path entry the module of ``cls`` was imported from (None for built-in modules).

    Raises
    ------
    ValueError
        For a class defined in ``__main__`` or inside a function: the child could not import it.
    """
    module_name = getattr(cls, "__module__", None) or ""
    qualname = getattr(cls, "__qualname__", "")
    if module_name == "__main__":
        raise ValueError(
            f"cannot serve {qualname} in a process: it is defined in __main__, which the server "
            "process cannot import. Move the class into a module (e.g. instruments.py) and import it "
            "from there.")
    if "<locals>" in qualname:
        raise ValueError(f"cannot serve {module_name}.{qualname} in a process: a class defined inside "
                         "a function cannot be imported by the server process; define it at module level.")
    module = sys.modules.get(module_name)
    if module is None:
        raise ValueError(f"cannot serve {qualname}: its module {module_name!r} is not imported")
    filename = getattr(module, "__file__", None)
    if not filename:
        paths = list(getattr(module, "__path__", []) or [])
        if not paths:
            return None  # built in, importable anywhere
        filename = os.path.join(paths[0], "__init__.py")
    path = os.path.abspath(filename)
    if os.path.splitext(os.path.basename(path))[0] == "__init__":
        path = os.path.dirname(path)
    for _ in module_name.split("."):
        path = os.path.dirname(path)
    return path


def _literal(value: Any, what: str) -> str:
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise TypeError(f"serve_in_process passes {what} to the server process as Python literals; "
                        f"{text[:200]} is not one (use numbers, strings, bytes, tuples, lists, dicts, "
                        "sets, booleans and None, or serve an empty server and call instantiate)")
    return text


def _child_env(protocol: Optional[Protocol]) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if protocol is not None:
        try:
            env["PZC_KEY"] = protocol.hmac_key.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("serve_in_process passes the HMAC key in the environment (PZC_KEY); "
                             "use a key that is valid UTF-8 text") from None
        env["PZC_SER"] = protocol.serializer
    return env


def python_command() -> List[str]:
    """How to start ``python -m pizco_qt`` without the working directory on the child's sys.path.

    ``python -m`` puts the working directory first on ``sys.path``, so a ``zmq.py``
    planted there would run in the server. Python 3.11+ has ``-P`` for that; older
    versions drop the entry before importing anything else.
    """
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", "pizco_qt"]
    return [sys.executable, "-c", "import sys; del sys.path[0]; import runpy; "
                                  "runpy.run_module('pizco_qt', run_name='__main__', alter_sys=True)"]


def build_argv(served_cls: type, args: tuple, kwargs: dict, rep_endpoint: Optional[str],
               pub_endpoint: Optional[str], *, name: Optional[str], gui: bool, verbose: bool) -> List[str]:
    """The child's command line: ``python -P -m pizco_qt ... --watch-stdin`` (see ``python_command``).

    The sys.path root of the served class's module is passed explicitly (``-p``).
    """
    root = class_path_root(served_cls)
    argv = [*python_command(),
            rep_endpoint or "tcp://127.0.0.1:0", pub_endpoint or "tcp://127.0.0.1:0",
            "--serve", f"{served_cls.__module__}:{served_cls.__qualname__}",
            "--args", _literal(tuple(args), "the constructor's args"),
            "--kwargs", _literal(dict(kwargs), "the constructor's kwargs"),
            "--watch-stdin"]
    if root:
        argv += ["-p", root]
    if name:
        argv += ["--name", name]
    if gui:
        argv.append("--gui")
    if verbose:
        argv.append("--verbose")
    return argv


def serve_in_process(served_cls: Any, args: tuple = (), kwargs: Optional[dict] = None,
                     rep_endpoint: Optional[str] = None, pub_endpoint: Optional[str] = None, *,
                     name: Optional[str] = None, protocol: Optional[Protocol] = None,
                     gui: bool = False, verbose: bool = False, timeout: Optional[float] = None,
                     curve: Optional[Any] = None, settings: Optional[Settings] = None) -> Any:
    """Serve ``served_cls(*args, **kwargs)`` in a new child process and return a Proxy to it.

    Parameters
    ----------
    served_cls : type
        A class importable by its module name (not defined in ``__main__``).
    args, kwargs
        Constructor arguments; Python literals only (they travel on the command line).
    rep_endpoint, pub_endpoint : str or (host, port), optional
        Endpoints the child binds (default: loopback, random free ports).
    name : str, optional
        Register the child's server under this name with the registry.
    protocol : Protocol, optional
        Key and serializer; passed to the child through ``PZC_KEY`` / ``PZC_SER``.
    gui : bool
        Open the status window in the child (the child creates its QApplication).
    verbose : bool
        Verbose logging in the child; its output is relayed to this process's stdout/stderr.
    timeout : float, optional
        Seconds to wait for the child's ready line (default ``settings.process_start_timeout``, 30 s).
    curve : CurveConfig, optional
        CURVE for the child's server (its key files go on the child's command line);
        the returned proxy reaches it with the same key pair.
    settings : Settings, optional
        This side's settings (default ``Settings.from_environment()``): the start
        timeout, the stderr lines kept, the child's stop timeout, and the proxy's.

    Returns
    -------
    Proxy
        ``proxy._proxy_stop_server()`` stops the server and ends the child.

    Raises
    ------
    ValueError, TypeError
        The class cannot be imported by a child, or the arguments are not literals.
    ProcessStartError
        The child failed (import error, port taken, crash) or was not ready in time;
        ``str()`` includes the last lines of its stderr.
    """
    from .proxy import Proxy

    settings = settings if settings is not None else Settings.from_environment()
    timeout = settings.process_start_timeout if timeout is None else timeout
    if not isinstance(served_cls, type):
        raise TypeError(f"serve_in_process needs a class, not {type(served_cls).__name__}")
    rep_endpoint, pub_endpoint = normalize_optional(rep_endpoint), normalize_optional(pub_endpoint)
    argv = build_argv(served_cls, tuple(args), dict(kwargs or {}), rep_endpoint, pub_endpoint,
                      name=name, gui=gui, verbose=verbose)
    if curve is not None:
        argv += ["--curve-secret", curve.secret_key_file]
        if curve.public_keys_dir is not None:
            argv += ["--curve-clients", curve.public_keys_dir]
    label = f"{served_cls.__module__}.{served_cls.__qualname__}"
    child = ChildProcess(argv, _child_env(protocol), label, verbose=verbose, settings=settings)
    try:
        child.wait_ready(timeout)
        from .endpoints import connectable

        proxy = Proxy(connectable(child.rep_endpoint), protocol=protocol,
                      curve=curve.for_own_client() if curve is not None else None, settings=settings)
    except BaseException:
        child.stop(timeout=settings.stop_timeout)
        raise
    object.__setattr__(proxy, "_proxy_process", child)
    logger.info("serving %s in process %d at %s", label, child.pid, child.rep_endpoint)
    return proxy


def live_children() -> Tuple[ChildProcess, ...]:
    """The children started by this process that are still running (or not yet reaped)."""
    with _live_lock:
        return tuple(_live)
