"""The server status window (``serve_in_process(gui=True)``, ``pizco-server -g``).

``StatusWindow(server, parent=None)`` is a QMainWindow; importing this package
imports QtWidgets but creates nothing.
"""
from .window import LogPaneHandler, StatusWindow

__all__ = ["StatusWindow", "LogPaneHandler"]
