"""Objects and helpers for the Qt integration tests (importable by subprocess scripts too)."""
from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, List

from qtpy import QtCore

from pizco_qt import Signal


class Meter:
    """A plain instrument: a text value with a change signal, and a few extra signals."""

    value_changed = Signal(str)
    pair = Signal(int, int)
    count = Signal(int)

    def __init__(self) -> None:
        self._value = ""

    @property
    def value(self) -> str:
        return self._value

    @value.setter
    def value(self, new: str) -> None:
        self._value = str(new)
        self.value_changed.emit(self._value)

    def set_value(self, new: str) -> str:
        self.value = new
        return self._value

    def emit_pair(self, a: int, b: int) -> None:
        self.pair.emit(a, b)

    def emit_counts(self, n: int, start: int = 0) -> int:
        for i in range(start, start + n):
            self.count.emit(i)
        return n

    def stream(self, rate: float, seconds: float, chunk: int = 50) -> "concurrent.futures.Future":
        """Emit ``count(i)`` at ``rate`` per second for ``seconds`` from a thread (paced in chunks)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            total = int(rate * seconds)
            start = time.monotonic()
            pause = threading.Event()
            i = 0
            while i < total:
                for _ in range(min(chunk, total - i)):
                    self.count.emit(i)
                    i += 1
                ahead = start + i / rate - time.monotonic()
                if ahead > 0:
                    pause.wait(ahead)
            fut.set_result(time.monotonic() - start)

        threading.Thread(target=run, name="meter-stream", daemon=True).start()
        return fut

    def slow(self, seconds: float) -> str:
        threading.Event().wait(seconds)
        return f"slept {seconds}"


class QtMeter(QtCore.QObject):
    """A served QObject with Qt signals; it records the thread of every call."""

    value_changed = QtCore.Signal(str)
    count = QtCore.Signal(int)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._value = ""
        self.threads: List[Any] = []

    def _seen(self) -> None:
        self.threads.append(QtCore.QThread.currentThread())

    @property
    def value(self) -> str:
        self._seen()
        return self._value

    @value.setter
    def value(self, new: str) -> None:
        self._seen()
        self._value = str(new)
        self.value_changed.emit(self._value)

    def set_value(self, new: str) -> str:
        self._seen()
        self.value = new
        return self._value

    def where(self) -> str:
        """Name of the calling thread's QThread object (or of the Python thread)."""
        self._seen()
        return QtCore.QThread.currentThread().objectName() or threading.current_thread().name

    def emit_counts(self, n: int) -> int:
        self._seen()
        for i in range(n):
            self.count.emit(i)
        return n


class Receiver(QtCore.QObject):
    """A QObject with a Qt slot and a relay signal (for chaining)."""

    relay = QtCore.Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[Any] = []

    @QtCore.Slot(str)
    def on_value(self, value: str) -> None:
        self.calls.append((value, QtCore.QThread.currentThread()))

    def plain_method(self, value: str) -> None:
        self.calls.append((value, QtCore.QThread.currentThread()))
