"""Objects served in the tests."""
from __future__ import annotations

import concurrent.futures
import threading

from pizco_qt import Signal


class CustomError(Exception):
    """A picklable user exception."""


class Unpicklable(Exception):
    """An exception that cannot travel: its constructor needs two arguments."""

    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")
        self.lock = threading.Lock()


class Stage:
    """A fake motorized stage with every kind of member a proxy must handle."""

    position_changed = Signal(float, float)
    moved = Signal()
    many = Signal()

    def __init__(self, position: float = 0.0):
        self._position = position
        self._secret = None
        self.speed = 1.5
        self.name = "stage-1"
        self.settings = {"units": "mm", "limit": 10}
        self.numbers = [1, 2, 3]
        self.release = threading.Event()

    @property
    def position(self) -> float:
        return self._position

    @position.setter
    def position(self, value: float) -> None:
        old, self._position = self._position, float(value)
        self.position_changed.emit(self._position, old)

    @property
    def read_only(self) -> str:
        return "fixed"

    def _set_secret(self, value):
        self._secret = value

    secret = property(None, _set_secret)

    def move_by(self, delta: float, *, speed: float = 1.0) -> float:
        self.position = self._position + delta * speed
        return self._position

    def echo(self, *args, **kwargs):
        return args, kwargs

    def fail(self, message: str = "boom"):
        raise CustomError(message)

    def fail_key(self):
        return {}["missing"]

    def fail_unpicklable(self):
        raise Unpicklable(1, 2)

    def slow(self, seconds: float) -> str:
        threading.Event().wait(seconds)
        return "done"

    def blocked(self) -> str:
        self.release.wait(10)
        return "released"

    def later(self, value, delay: float = 0.05) -> concurrent.futures.Future:
        fut = concurrent.futures.Future()

        def work():
            threading.Event().wait(delay)
            if fut.set_running_or_notify_cancel():
                fut.set_result(value * 2)

        threading.Thread(target=work, daemon=True).start()
        return fut

    def later_fail(self) -> concurrent.futures.Future:
        fut = concurrent.futures.Future()
        fut.set_exception(CustomError("future failed"))
        return fut

    def pending_future(self) -> concurrent.futures.Future:
        self.last_future = concurrent.futures.Future()
        return self.last_future

    def emit_many(self, n: int) -> int:
        for i in range(n):
            self.many.emit(i)
        return n
