"""The pizco-monitor desktop window: live servers, their attributes, methods and signals.

``MonitorWindow(registry=None, parent=None)`` is the main window; ``pizco-monitor``
(``python -m pizco_qt.apps.monitor``) shows it. Importing this package starts nothing
and creates no QApplication.

Thread affinity: GUI thread.
"""
from __future__ import annotations

from typing import Any

__all__ = ["MonitorWindow"]


def __getattr__(name: str) -> Any:
    # QtWidgets is imported only when the window is asked for
    if name == "MonitorWindow":
        from .window import MonitorWindow

        return MonitorWindow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
