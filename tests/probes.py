"""Classes served in child processes by the process, command-line and window tests."""
from __future__ import annotations

import os

from qtpy import QtCore

from pizco_qt import Signal


class Crashy:
    """Raises in its constructor."""

    def __init__(self, code: int = 42) -> None:
        raise RuntimeError(f"crash in __init__ {code}")


class Counter:
    """A small plain object with a signal."""

    changed = Signal(int)

    def __init__(self, start: int = 0, step: int = 1) -> None:
        self.value = start
        self.step = step

    def bump(self) -> int:
        """Add the step and emit ``changed``."""
        self.value += self.step
        self.changed.emit(self.value)
        return self.value

    def close_status_window(self) -> bool:
        """Close the status window right after this call has been answered."""
        from qtpy import QtWidgets

        for w in QtWidgets.QApplication.topLevelWidgets():
            if type(w).__name__ == "StatusWindow" and w.isVisible():
                QtCore.QTimer.singleShot(50, w.close)
                return True
        return False

    def pid(self) -> int:
        return os.getpid()

    def environment(self, name: str) -> str:
        return os.environ.get(name, "")

    def qt_state(self) -> dict:
        """Which Qt widget modules are imported and whether a Q(Core)Application exists."""
        import sys

        from qtpy import QtCore

        return {"widgets": sorted(m for m in sys.modules if m.endswith(".QtWidgets")),
                "app": QtCore.QCoreApplication.instance() is not None}


class WindowProbe(QtCore.QObject):
    """A QObject served by a ``-g`` server: it lives in the GUI thread, so it may look at the windows."""

    ticked = QtCore.Signal(int)

    def windows(self) -> list:
        """Visible top-level windows: class name, title, and the texts of their line edits and labels."""
        from qtpy import QtWidgets

        found = []
        for w in QtWidgets.QApplication.topLevelWidgets():
            if not w.isVisible():
                continue
            texts = [e.text() for e in w.findChildren(QtWidgets.QLineEdit)]
            texts += [lab.text() for lab in w.findChildren(QtWidgets.QLabel)]
            found.append({"class": type(w).__name__, "title": w.windowTitle(), "texts": texts})
        return found

    def screenshot(self, path: str) -> bool:
        """Save the status window's picture to ``path``."""
        from qtpy import QtWidgets

        for w in QtWidgets.QApplication.topLevelWidgets():
            if type(w).__name__ == "StatusWindow" and w.isVisible():
                w.refresh()
                return bool(w.grab().save(path))
        return False

    def close_status_window(self) -> bool:
        """Close the status window right after this call has been answered."""
        from qtpy import QtWidgets

        for w in QtWidgets.QApplication.topLevelWidgets():
            if type(w).__name__ == "StatusWindow" and w.isVisible():
                QtCore.QTimer.singleShot(50, w.close)
                return True
        return False

    def pid(self) -> int:
        return os.getpid()


class LoopProbe(QtCore.QObject):
    """A QObject served headless: the command line gives it a QCoreApplication loop."""

    def runs_in_main_thread_with_a_loop(self) -> bool:
        import threading

        return (threading.current_thread() is threading.main_thread()
                and QtCore.QThread.currentThread().loopLevel() > 0)

    def qt_state(self) -> dict:
        return Counter.qt_state(self)  # type: ignore[arg-type]
