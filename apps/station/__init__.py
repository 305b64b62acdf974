"""The station window (``pizco-station FILE --gui``).

``StationWindow(station, parent=None)`` is a QMainWindow listing a
:class:`pizco_qt.Station`'s servers live; importing this package imports
QtWidgets but creates nothing.
"""
from .window import StationModel, StationWindow

__all__ = ["StationWindow", "StationModel"]
