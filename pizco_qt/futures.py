"""Qt-friendly futures: receive a Future's outcome in a slot on your thread.

``FutureWatcher(fut)`` emits ``finished(result)`` or ``failed(exception)`` through
the pizco_qt delivery path, i.e. in the thread that created the watcher when it
runs a Qt event loop (normally the GUI thread), else on the dispatcher thread::

    watcher = FutureWatcher(proxy.slow_scan.future(10))
    watcher.finished.connect(show_result)
    watcher.failed.connect(show_error)

Thread affinity: create it in the thread that should receive the signals. In a
thread without a Qt event loop (a plain script) the signals are emitted on the
pizco_qt dispatcher thread; there, connect with ``Qt.DirectConnection`` (PyQt
queues a plain function's call to the thread that connected it, which never
runs a loop in a plain script).
"""
from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, Callable, Optional

from ._qt import QObject, Signal
from .delivery import current_target

__all__ = ["FutureWatcher", "watch_future", "RemoteFuture"]

logger = logging.getLogger(__name__)


class RemoteFuture(concurrent.futures.Future):
    """A client Future; ``cancel()`` also cancels the server-side future (best effort)."""

    def __init__(self) -> None:
        super().__init__()
        self._on_cancel: Optional[Callable[[], None]] = None

    def cancel(self) -> bool:
        """Cancel locally at once and ask the server to cancel; later results are discarded."""
        if not super().cancel():
            return False
        hook, self._on_cancel = self._on_cancel, None
        if hook is not None:
            try:
                hook()
            except Exception:
                logger.debug("remote cancel failed", exc_info=True)
        return True


def _settle(fut: concurrent.futures.Future, result: Any = None, exc: Optional[BaseException] = None) -> None:
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled meanwhile: the late outcome is discarded


class FutureWatcher(QObject):
    """Turns a ``concurrent.futures.Future`` into Qt signals on the creating thread.

    Thread affinity: lives in the creating thread.
    """

    #: Signal(object) -- the future's result, when it succeeded.
    finished = Signal(object)
    #: Signal(object) -- the exception, when it failed (CancelledError when cancelled).
    failed = Signal(object)
    #: Signal() -- after finished or failed, in every case.
    done = Signal()

    def __init__(self, future: concurrent.futures.Future, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.future = future
        self._target = current_target()
        future.add_done_callback(self._on_done)

    def _on_done(self, fut: concurrent.futures.Future) -> None:
        self._target.post(lambda: self._emit(fut))

    def _emit(self, fut: concurrent.futures.Future) -> None:
        try:
            if fut.cancelled():
                self.failed.emit(concurrent.futures.CancelledError())
            elif fut.exception() is not None:
                self.failed.emit(fut.exception())
            else:
                self.finished.emit(fut.result())
            self.done.emit()
        except RuntimeError:
            pass  # the watcher was deleted before the future finished

    def cancel(self) -> bool:
        """Cancel the watched future."""
        return self.future.cancel()


def watch_future(future: concurrent.futures.Future, on_result: Any = None, on_error: Any = None,
                 parent: Optional[QObject] = None) -> FutureWatcher:
    """Connect ``on_result``/``on_error`` to a new FutureWatcher and return it (keep a reference)."""
    watcher = FutureWatcher(future, parent)
    if on_result is not None:
        watcher.finished.connect(on_result)
    if on_error is not None:
        watcher.failed.connect(on_error)
    return watcher
