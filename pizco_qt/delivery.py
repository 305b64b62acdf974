"""One delivery path for everything pizco_qt calls back into user code.

Remote signal slots, connection-state signals, watch updates and future helpers
all arrive here, from the I/O thread or a server thread. A delivery goes to the
thread that asked for it when that thread runs a Qt event loop (the main thread
of an existing Q(Core)Application, or a QThread with ``loopLevel() > 0``),
queued there through a Qt signal; otherwise it runs on the pizco_qt dispatcher
thread, so plain scripts without any QApplication get their callbacks too.

Items for one target are batched: while a batch is waiting to run, new items
join it, so a flood costs one queued Qt event per turn of the target's loop.

Thread affinity: ``Target.post`` from any thread; items run on the target thread
or on the dispatcher thread, never on the I/O thread.
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import weakref
from typing import Any, Callable, Optional

from ._qt import QObject, QThread, QtCore, Signal, app_instance, runs_event_loop

logger = logging.getLogger(__name__)

__all__ = ["Target", "current_target", "dispatcher", "report_exception"]


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

    @property
    def ident(self) -> Optional[int]:
        t = self._thread
        return t.ident if t is not None else None

    def post(self, fn: Callable[[], None]) -> None:
        with self._cond:
            self._queue.append(fn)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pizco-dispatcher", daemon=True)
                self._thread.start()
            self._cond.notify()

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


class _Courier(QObject):
    """Lives in a target thread; runs the target's pending batch there."""

    arrived = Signal()

    def __init__(self, target: "Target") -> None:
        super().__init__()
        self._target = weakref.ref(target)
        self.arrived.connect(self._on_arrived)

    def _on_arrived(self) -> None:
        target = self._target()
        if target is not None:
            target.drain()


class Target:
    """A thread that receives deliveries (the thread that connected a slot).

    Thread affinity: created in the thread it stands for; ``post`` from any thread.
    """

    def __init__(self) -> None:
        self.ident = threading.get_ident()
        self.qthread: Any = None
        self._courier: Optional[_Courier] = None
        self._lock = threading.Lock()
        self._pending: list = []
        self._scheduled = False
        if threading.current_thread() is threading.main_thread() or self._qt_capable_now():
            self.qthread = QThread.currentThread()
            self._courier = _Courier(self)

    @staticmethod
    def _qt_capable_now() -> bool:
        if app_instance() is None:
            return False
        try:
            return QThread.currentThread().loopLevel() > 0
        except RuntimeError:
            return False

    def queued_to_qt(self) -> bool:
        """Whether deliveries go to this thread's Qt loop (decided per delivery)."""
        return self._courier is not None and runs_event_loop(self.qthread)

    def post(self, item: Callable[[], None]) -> None:
        """Queue ``item`` for this target; order is kept."""
        with self._lock:
            self._pending.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        self._schedule()

    def post_many(self, items: list) -> None:
        """Queue several items at once (one schedule for the lot)."""
        with self._lock:
            self._pending.extend(items)
            if self._scheduled:
                return
            self._scheduled = True
        self._schedule()

    def _schedule(self) -> None:
        courier = self._courier
        if courier is not None and runs_event_loop(self.qthread):
            try:
                courier.arrived.emit()  # queued to the courier's thread
                return
            except RuntimeError:  # courier destroyed with its thread
                self._courier = None
        dispatcher.post(self.drain)

    def drain(self) -> None:
        """Run every pending item (on the target thread or the dispatcher)."""
        with self._lock:
            batch = self._pending
            self._pending = []
            self._scheduled = False
        for item in batch:
            try:
                item()
            except Exception:
                report_exception("a pizco_qt slot")


_local = threading.local()
_dispatcher_target: Optional[Target] = None
_dispatcher_lock = threading.Lock()


def current_target() -> Target:
    """The delivery target of the calling thread (one per thread, created on first use)."""
    target = getattr(_local, "target", None)
    if target is None or (target._courier is None and threading.current_thread() is threading.main_thread()):
        target = Target()
        _local.target = target
    elif target._courier is None and Target._qt_capable_now():
        # A QThread that started its event loop after its first connection.
        target = Target()
        _local.target = target
    return target


def call_soon(target: Optional[Target], fn: Callable[[], None]) -> None:
    """Deliver one call through ``target`` (or the dispatcher when None)."""
    if target is None:
        dispatcher.post(fn)
    else:
        target.post(fn)


def run_in_qthread(qthread: Any, fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` in the thread of ``qthread`` (which runs an event loop) and wait for it."""
    import concurrent.futures

    fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()

    def job() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as exc:  # passed back to the waiting thread
            fut.set_exception(exc)

    invoker = _Invoker.for_thread(qthread)
    invoker.call.emit(job)
    return fut.result(timeout)


class _Invoker(QObject):
    """Runs callables in the thread it lives in (used for served QObjects)."""

    call = Signal(object)
    _by_thread: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
    _keep: dict = {}
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run, QtCore.Qt.QueuedConnection)

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            report_exception("an invoked call")

    @classmethod
    def for_thread(cls, qthread: Any) -> "_Invoker":
        key = id(qthread)
        with cls._lock:
            inv = cls._keep.get(key)
            if inv is None:
                inv = cls()
                inv.moveToThread(qthread)
                cls._keep[key] = inv
            return inv
