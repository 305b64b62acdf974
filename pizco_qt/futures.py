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

__all__ = ["FutureWatcher", "RemoteFuture", "settle", "copy_outcome"]

logger = logging.getLogger(__name__)


class RemoteFuture(concurrent.futures.Future):
    """A client Future; ``cancel()`` also cancels the server-side future (best effort)."""

    def __init__(self) -> None:
        super().__init__()
        self._on_cancel: Optional[Callable[[], None]] = None

    def on_cancel(self, hook: Optional[Callable[[], None]]) -> None:
        """Run ``hook`` (once) when this Future is cancelled: it tells the server, or forgets the reply."""
        self._on_cancel = hook

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


def settle(fut: concurrent.futures.Future, result: Any = None, exc: Optional[BaseException] = None) -> None:
    """Give ``fut`` its result (or exception ``exc``); an outcome arriving after a cancel is discarded."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled meanwhile: the late outcome is discarded


def copy_outcome(src: concurrent.futures.Future, dst: concurrent.futures.Future) -> None:
    """Give ``dst`` the outcome of the finished ``src``: its result, its exception, or its cancellation."""
    if dst.done():
        return
    if src.cancelled():
        dst.cancel()
    elif src.exception() is not None:
        settle(dst, exc=src.exception())
    else:
        settle(dst, src.result())


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
