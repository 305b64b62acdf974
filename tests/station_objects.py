"""Served classes for tests/test_station.py (imported by the station's child processes)."""
from __future__ import annotations

import atexit
import os
import sys
import threading

from pizco_qt import Signal


class Ticker:
    """Emits ``tick(n, pid)`` every ``period`` seconds from its own thread."""

    tick = Signal()

    def __init__(self, period: float = 0.05) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._period = float(period)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self.count += 1
            self.tick.emit(self.count, os.getpid())

    def pid(self) -> int:
        return os.getpid()


class Plain:
    """A plain served object with a value and a method."""

    def __init__(self, value: int = 0, label: str = "", cleanup_marker: str = "") -> None:
        self.value = value
        self.label = label
        if cleanup_marker:  # proves a clean exit: written only if the process ends normally
            atexit.register(self._clean_up, cleanup_marker)

    @staticmethod
    def _clean_up(marker: str) -> None:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))

    def add(self, a: int, b: int) -> int:
        return a + b + self.value

    def pid(self) -> int:
        return os.getpid()


class DiesOnRestart:
    """Serves normally the first time; every later start (the marker file exists) dies at once."""

    def __init__(self, marker: str) -> None:
        if os.path.exists(marker):
            sys.stderr.write(f"DiesOnRestart: {marker} exists, dying on purpose\n")
            sys.stderr.flush()
            os._exit(3)
        with open(marker, "w") as f:
            f.write(str(os.getpid()))

    def pid(self) -> int:
        return os.getpid()


class BrokenAtStart:
    """A constructor that always fails."""

    def __init__(self) -> None:
        raise RuntimeError("the instrument is not connected")
