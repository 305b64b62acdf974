"""The per-process I/O thread: the one owner of pizco_qt's long-lived ZMQ sockets.

It owns every subscription socket, each server's publish socket and the
sockets used for non-blocking calls and liveness probes. Other threads never
touch those sockets: they ``submit()`` commands (a deque plus a wake-up pipe).
Its ``run()`` is its own zmq poll loop with deadlines (no ``QThread.exec()``,
no QTimer), so it works with no Q(Core)Application at all. It moves bytes and
checks envelopes; it never deserializes content and never runs user code.

It starts with the first agent and stops with the last; an exit hook stops it
with bounded linger. A stopped thread's Python object is kept here until a new
I/O thread starts and nothing else refers to it: stopped agents still point at
it, and if one of them were freed by a daemon thread while the interpreter
shuts down, freeing the QThread there would abort the process (the binding
drops the GIL to delete the C++ object, and a daemon thread that asks for it
back during finalization is unwound through C++ code, which terminates).

Thread affinity: ``submit``/``call``/``call_later`` from any thread; handlers and
commands run on the I/O thread.
"""
from __future__ import annotations

import atexit
import collections
import concurrent.futures
import heapq
import itertools
import logging
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

import zmq

from . import config, forking
from ._qt import QThread
from .delivery import report_exception

logger = logging.getLogger(__name__)

__all__ = ["IOThread", "acquire", "release", "context", "io_thread"]

_ctx: Optional[zmq.Context] = None
_ctx_lock = threading.Lock()


def context() -> zmq.Context:
    """The ZMQ context shared by every pizco_qt socket of this process (so inproc works)."""
    global _ctx
    if _ctx is None or _ctx.closed:
        with _ctx_lock:
            if _ctx is None or _ctx.closed:
                ctx = zmq.Context()
                ctx.setsockopt(zmq.LINGER, config.DEFAULTS.linger_ms)
                _ctx = ctx
    return _ctx


class IOThread(QThread):
    """The only thread that touches long-lived zmq sockets.

    Why a QThread: the design asks for it. Qt then knows the thread as its own
    (``QThread.currentThread()`` there is this object, and Qt tools list it as
    ``pizco-io``), so anything Qt does on it, such as emitting a signal, has a
    proper thread affinity rather than one Qt makes up for a foreign thread.

    What it costs: importing pizco_qt imports Qt's core module; starting the
    thread goes through Qt (a little slower than ``threading.Thread``); and the
    Python object must outlive the thread and never be freed on a daemon thread
    while the interpreter exits, which would abort the process, so stopped I/O
    threads are kept in ``_retired`` until a new one starts (see the module
    docstring). Its loop is ``run()``'s own zmq poll with deadlines, not
    ``exec()``, so none of that needs a Q(Core)Application.

    Thread affinity: ``submit()`` and ``call()`` from anywhere.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("pizco-io")
        self._commands: "collections.deque[Callable[[], None]]" = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self._poller = zmq.Poller()
        self._handlers: Dict[Any, Callable[[Any], None]] = {}
        self._timers: list = []
        self._seq = itertools.count()
        self._running = True
        self._ident: Optional[int] = None
        self._started = threading.Event()
        self._finished = threading.Event()

    # -- any thread -------------------------------------------------------
    @property
    def ident(self) -> Optional[int]:
        return self._ident

    def wait_started(self, timeout: float) -> bool:
        """Wait until ``run()`` has begun (any thread); False after ``timeout`` seconds."""
        return self._started.wait(timeout)

    def in_thread(self) -> bool:
        return threading.get_ident() == self._ident

    def submit(self, command: Callable[[], None]) -> None:
        """Queue ``command`` for the I/O thread. Never blocks."""
        self._commands.append(command)
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or we are shutting down

    def call(self, fn: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Run ``fn`` on the I/O thread and return its result (bounded wait: ``timeout``,
        default ``Settings.io_call_timeout``)."""
        if self.in_thread():
            return fn()
        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.submit(job)
        return fut.result(config.DEFAULTS.io_call_timeout if timeout is None else timeout)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread after ``delay`` seconds."""
        when = time.monotonic() + delay
        if self.in_thread():
            heapq.heappush(self._timers, (when, next(self._seq), fn))
        else:
            self.submit(lambda: heapq.heappush(self._timers, (when, next(self._seq), fn)))

    # -- I/O thread only --------------------------------------------------
    def register(self, sock: Any, handler: Callable[[Any], None]) -> None:
        """Poll ``sock`` for input and call ``handler(sock)`` when readable."""
        self._handlers[sock] = handler
        self._poller.register(sock, zmq.POLLIN)

    def unregister(self, sock: Any, close: bool = True) -> None:
        """Stop polling ``sock`` (and close it)."""
        if self._handlers.pop(sock, None) is not None:
            try:
                self._poller.unregister(sock)
            except KeyError:
                pass
        if close and hasattr(sock, "close"):
            sock.close(linger=config.DEFAULTS.linger_ms)

    def _drain_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._wake_pending = False
        commands = self._commands
        while commands:
            command = commands.popleft()
            try:
                command()
            except Exception:
                report_exception("an I/O thread command")

    def _timeout_ms(self) -> Optional[int]:
        if not self._timers:
            return None
        return max(0, int((self._timers[0][0] - time.monotonic()) * 1000) + 1)

    def _run_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, fn = heapq.heappop(timers)
            try:
                fn()
            except Exception:
                report_exception("an I/O thread timer")

    def run(self) -> None:  # noqa: D401 - QThread override
        self._ident = threading.get_ident()
        wake_fd = self._wake_r.fileno()
        self._poller.register(wake_fd, zmq.POLLIN)
        self._started.set()
        try:
            while self._running:
                try:
                    events = self._poller.poll(self._timeout_ms())
                    for sock, _ in events:
                        if sock == wake_fd:
                            self._drain_commands()
                        else:
                            handler = self._handlers.get(sock)
                            if handler is not None:
                                handler(sock)
                    if self._timers:
                        self._run_timers()
                except Exception:  # run() must never raise (PyQt aborts)
                    report_exception("the I/O loop")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._drain_commands()
        except Exception:  # pragma: no cover
            pass
        for sock in list(self._handlers):
            try:
                self.unregister(sock)
            except Exception:  # pragma: no cover
                logger.debug("closing socket", exc_info=True)
        self._timers.clear()
        self._wake_r.close()
        self._wake_w.close()
        self._finished.set()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop the loop, close its sockets and join (within ``timeout``, default ``Settings.stop_timeout``)."""
        if timeout is None:
            timeout = config.DEFAULTS.stop_timeout
        def halt() -> None:
            self._running = False

        self.submit(halt)
        if threading.get_ident() != self._ident:
            self._finished.wait(timeout)
            self.wait(int(timeout * 1000))


_io: Optional[IOThread] = None
_users = 0
_lock = threading.RLock()
#: Stopped I/O threads, freed only here (see the module docstring).
_retired: "list[IOThread]" = []


def io_thread() -> IOThread:
    """The running I/O thread (an agent must have acquired it)."""
    io = _io
    if io is None:
        raise RuntimeError("the pizco_qt I/O thread is not running")
    return io


def acquire() -> IOThread:
    """Start the I/O thread if needed and count one more user."""
    global _io, _users
    with _lock:
        if _io is None:
            _prune_retired()
            io = IOThread()
            io.start()
            if not io.wait_started(config.DEFAULTS.thread_start_timeout):
                raise RuntimeError(f"the pizco_qt I/O thread did not start within {config.DEFAULTS.thread_start_timeout:g} s")
            _io = io
        _users += 1
        return _io


def release() -> None:
    """Count one user less; the last one stops the I/O thread."""
    global _io, _users
    with _lock:
        _users -= 1
        if _users > 0 or _io is None:
            return
        io, _io = _io, None
        _users = 0
        _retired.append(io)
    io.stop()


def _prune_retired() -> None:
    """Free the stopped threads no agent refers to any more (caller holds ``_lock``)."""
    for i in range(len(_retired) - 1, -1, -1):
        # 2 references: the list's and getrefcount's argument
        if _retired[i].isFinished() and sys.getrefcount(_retired[i]) <= 2:
            del _retired[i]


#: I/O threads, contexts and locks inherited across os.fork(): kept, never used or freed in the child.
_inherited: list = []


def _reset_after_fork() -> None:
    """In a forked child: forget the parent's I/O thread and context (they are unusable here)."""
    global _ctx, _ctx_lock, _io, _users, _lock
    _inherited.extend(x for x in (_io, _ctx) if x is not None)
    _inherited.extend(_retired)
    _retired.clear()
    _ctx, _io, _users = None, None, 0
    _ctx_lock = threading.Lock()
    _lock = threading.RLock()


forking.on_fork_child(_reset_after_fork)


@atexit.register
def _at_exit() -> None:
    global _io, _users
    with _lock:
        io, _io = _io, None
        _users = 0
        if io is not None:
            _retired.append(io)
    if io is not None:
        io.stop()
    ctx = _ctx
    if ctx is not None and not ctx.closed:
        done = threading.Event()

        def term() -> None:
            ctx.term()
            done.set()

        threading.Thread(target=term, name="pizco-term", daemon=True).start()
        done.wait(config.DEFAULTS.stop_timeout)
