"""One delivery path for everything pizco_qt calls back into user code.

Remote signal slots, connection-state signals, watch updates and future helpers
all arrive here, from the I/O thread or a server thread. A delivery goes to the
thread that asked for it when that thread runs a Qt event loop (the main thread
of an existing Q(Core)Application, or a QThread with ``loopLevel() > 0``),
queued there through a Qt signal; otherwise it runs on the pizco_qt dispatcher
thread, so plain scripts without any QApplication get their callbacks too.

Items for one target are batched: while a batch is waiting to run, new items
join it, so a flood costs one queued Qt event per turn of the target's loop,
and one turn spends at most ``Settings.turn_budget`` on them before letting painting,
input and timers run. ``QThreadCaller`` runs a server's calls in the thread of
a served QObject.

Thread affinity: ``Target.post`` from any thread; items run on the target thread
or on the dispatcher thread, never on the I/O thread.
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import time
import weakref
from typing import Any, Callable, Optional

from . import config, forking
from ._qt import QObject, QThread, QtCore, Signal, Slot, app_instance, runs_event_loop

logger = logging.getLogger(__name__)

__all__ = ["Target", "current_target", "dispatcher", "report_exception", "QThreadCaller", "WITHDRAWN"]


def report_exception(where: str) -> None:
    """Log the exception being handled and pass it to ``sys.excepthook``."""
    exc_type, exc, tb = sys.exc_info()
    logger.debug("exception in %s", where, exc_info=True)
    try:
        sys.excepthook(exc_type, exc, tb)
    except Exception:  # pragma: no cover - a broken hook must not kill us
        logger.exception("exception in %s", where)


class _Dispatcher:
    """The process-wide daemon thread that runs deliveries for threads without a Qt loop."""

    def __init__(self) -> None:
        self._queue: "collections.deque[Callable[[], None]]" = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None

    def post(self, fn: Callable[[], None]) -> None:
        with self._cond:
            self._queue.append(fn)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pizco-dispatcher", daemon=True)
                self._thread.start()
            self._cond.notify()

    def reset_after_fork(self) -> None:
        """In a forked child: the dispatcher thread is gone and its lock may be held; start afresh."""
        self._queue = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._thread = None

    def _run(self) -> None:
        queue = self._queue
        while True:
            with self._cond:
                while not queue:
                    self._cond.wait()
                batch = list(queue)
                queue.clear()
            for fn in batch:
                try:
                    fn()
                except Exception:
                    report_exception("a pizco_qt callback (dispatcher thread)")


dispatcher = _Dispatcher()


forking.on_fork_child(dispatcher.reset_after_fork)


class _Courier(QObject):
    """Lives in a target thread; runs the target's pending batch there."""

    arrived = Signal()

    def __init__(self, target: "Target") -> None:
        super().__init__()
        self._target = weakref.ref(target)
        # queued even when posted from the target thread itself: a slot never runs
        # inside the call that posted it (e.g. a FutureWatcher of a finished future)
        self.arrived.connect(self._on_arrived, QtCore.Qt.QueuedConnection)

    @Slot()
    def _on_arrived(self) -> None:
        target = self._target()
        if target is not None:
            target.drain(config.DEFAULTS.turn_budget)


class Target:
    """A thread that receives deliveries (the thread that connected a slot).

    The main thread and threads started by QThread get a courier QObject living
    in them; whether a delivery is queued to the thread's Qt loop or run on the
    dispatcher is decided per delivery, so a QThread that starts its loop later,
    or a main thread whose QApplication is created later, receives the
    deliveries that follow. A plain Python thread gets a courier only if it runs
    a Qt loop when it first connects; otherwise its deliveries run on the
    dispatcher.

    Thread affinity: created in the thread it stands for; ``post`` from any thread.
    """

    def __init__(self) -> None:
        self.ident = threading.get_ident()
        self.qthread: Any = None
        self._courier: Optional[_Courier] = None
        self._lock = threading.Lock()
        self._pending: list = []
        self._scheduled = False
        if _may_run_qt_loop():
            self.qthread = QThread.currentThread()
            self._courier = _Courier(self)

    def has_courier(self) -> bool:
        """Whether deliveries can be queued to this thread's Qt loop (it had one when the target was made)."""
        return self._courier is not None

    def post(self, item: Callable[[], None]) -> None:
        """Queue ``item`` for this target; order is kept."""
        with self._lock:
            self._pending.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        held = getattr(_holding, "targets", None)
        if held is not None:  # the posting thread is draining a socket: schedule once at the end
            held.append(self)
            return
        self.schedule()

    def schedule(self) -> None:
        """Have the pending items run: queued to the thread's Qt loop if it runs one, else on the dispatcher."""
        courier = self._courier
        if courier is not None and runs_event_loop(self.qthread):
            try:
                courier.arrived.emit()  # queued to the courier's thread
                return
            except RuntimeError:  # courier destroyed with its thread
                self._courier = None
        dispatcher.post(self.drain)

    def drain(self, budget: Optional[float] = None) -> None:
        """Run the pending items (on the target thread or the dispatcher).

        With a ``budget`` (seconds) it stops when the budget is spent and schedules
        the rest for the next turn, ahead of anything posted meanwhile.
        """
        with self._lock:
            batch = self._pending
            self._pending = []
            self._scheduled = False
        deadline = time.monotonic() + budget if budget is not None else None
        every = config.DEFAULTS.turn_clock_every
        for i, item in enumerate(batch):
            try:
                item()
            except Exception:
                report_exception("a pizco_qt slot")
            if deadline is not None and i % every == every - 1 and time.monotonic() > deadline and i + 1 < len(batch):
                with self._lock:
                    self._pending[:0] = batch[i + 1:]
                    if self._scheduled:
                        return
                    self._scheduled = True
                self.schedule()
                return


def _may_run_qt_loop() -> bool:
    """The main thread, a thread started by QThread, or a thread whose Qt loop runs now."""
    current = threading.current_thread()
    if current is threading.main_thread():
        return True
    if isinstance(current, threading._DummyThread):  # started outside Python: a QThread
        return True
    if app_instance() is None:
        return False
    try:
        return QThread.currentThread().loopLevel() > 0
    except RuntimeError:  # pragma: no cover
        return False


_local = threading.local()
_holding = threading.local()


class held_schedules:
    """Within this block, targets posted to by this thread are scheduled once, at its end.

    The I/O thread drains a readable socket inside it, so a burst of
    notifications becomes one batch per target thread (order kept) and the
    receiving thread does not compete for the GIL with the drain.
    """

    def __enter__(self) -> None:
        _holding.targets = []

    def __exit__(self, *exc: Any) -> None:
        targets, _holding.targets = _holding.targets, None
        for target in targets:
            try:
                target.schedule()
            except Exception:
                report_exception("scheduling a delivery")


def current_target() -> Target:
    """The delivery target of the calling thread (one per thread, created on first use)."""
    target = getattr(_local, "target", None)
    if target is None or (not target.has_courier() and _may_run_qt_loop()):
        target = Target()
        _local.target = target
    return target


#: What QThreadCaller.call returns for a call dropped because the server stopped.
WITHDRAWN = object()


class QThreadCaller:
    """Runs calls in the thread a QObject lives in, for a server's worker thread.

    A call is queued to that thread's event loop and waited for. If the loop stops
    running before the call has started (for example a QEventLoop that ended), the
    call is withdrawn and runs in the waiting thread instead, so the object is
    still touched by one thread at a time and nothing waits forever.

    Thread affinity: ``call`` from one thread at a time (the server's worker).
    """

    def __init__(self) -> None:
        self._qthread: Any = None
        self._invoker: Optional[_Invoker] = None

    def _invoker_for(self, qthread: Any) -> "_Invoker":
        inv = self._invoker
        if inv is not None and (self._qthread is qthread or self._qthread == qthread):
            return inv
        self.close()
        inv = _Invoker()
        inv.moveToThread(qthread)
        self._qthread, self._invoker = qthread, inv
        return inv

    def call(self, qthread: Any, fn: Callable[[], Any], keep_waiting: Callable[[], bool]) -> Any:
        """Run ``fn`` in ``qthread`` and return its result (exceptions pass through).

        ``keep_waiting()`` is asked between polls; when it turns False (the server
        stops) a call that has not started is dropped and ``WITHDRAWN`` is returned.
        """
        import concurrent.futures

        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()

        def job() -> None:
            if not fut.set_running_or_notify_cancel():
                return  # withdrawn: it ran (or will not run) elsewhere
            try:
                fut.set_result(fn())
            except BaseException as exc:  # passed back to the waiting thread
                fut.set_exception(exc)

        self._invoker_for(qthread).call.emit(job)
        idle_polls = 0
        while True:
            try:
                return fut.result(config.DEFAULTS.poll_interval)
            except concurrent.futures.TimeoutError:
                pass
            if fut.running():
                continue  # started: wait for it to finish
            try:
                loop_runs = qthread.loopLevel() > 0
            except RuntimeError:
                loop_runs = False
            if not keep_waiting() and fut.cancel():
                return WITHDRAWN
            # a loop that turns in short slices (processEvents-style waits) is
            # not "stopped": withdraw only after two polls without it
            idle_polls = 0 if loop_runs else idle_polls + 1
            if idle_polls >= 2 and fut.cancel():
                return fn()

    def close(self) -> None:
        """Let the invoker go (deleted in its own thread)."""
        inv, self._invoker, self._qthread = self._invoker, None, None
        if inv is not None:
            try:
                inv.deleteLater()
            except RuntimeError:
                pass


class _Invoker(QObject):
    """Runs callables in the thread it lives in (used for served QObjects)."""

    call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run, QtCore.Qt.QueuedConnection)

    @Slot(object)
    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            report_exception("an invoked call")
