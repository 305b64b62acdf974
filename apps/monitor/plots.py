"""Live time plots of numbers (signal arguments, watched attributes), drawn with pyqtgraph.

pyqtgraph is optional: without it ``PlotPanel.available`` is False and the
window hides the plot pane; everything else works.

Thread affinity: GUI thread.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from qtpy import QtCore, QtWidgets

__all__ = ["PlotPanel", "pyqtgraph_or_none"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22"]


def pyqtgraph_or_none() -> Any:
    """The pyqtgraph module, or None when it is not installed (or fails to import)."""
    try:
        import pyqtgraph
    except Exception:
        return None
    return pyqtgraph


class PlotPanel(QtWidgets.QWidget):
    """A plot of several named curves against time (the last ``span`` seconds)."""

    def __init__(self, span: float = 60.0, points: int = 3000,
                 parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("plots")
        self.span = span
        self._points = points
        self._t0 = time.time()
        self._data: Dict[str, Tuple[Deque[float], Deque[float]]] = {}
        self._curves: Dict[str, Any] = {}
        self._dirty: set = set()
        pg = self._pg = pyqtgraph_or_none()
        self.available = pg is not None
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if pg is None:
            self.plot = None
            label = QtWidgets.QLabel("Install pyqtgraph to see live plots.")
            label.setAlignment(QtCore.Qt.AlignCenter)
            layout.addWidget(label)
            return
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("plot_widget")
        item = self.plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setLabel("bottom", "time", units="s")
        item.setMenuEnabled(True)
        for axis in ("left", "bottom"):
            item.getAxis(axis).setTextPen("#444")
            item.getAxis(axis).setPen("#999")
        self._legend = item.addLegend(offset=(-10, -10), labelTextColor="#222", brush=(255, 255, 255, 200))
        self._empty = pg.TextItem("Numbers appear here:\nsubscribe to a signal,\nor tick Plot by an attribute",
                                  color="#888", anchor=(0.5, 0.5))
        item.addItem(self._empty)
        self._empty.setPos(-self.span / 2, 0.5)
        item.setYRange(0, 1)
        item.setXRange(-self.span, 0, padding=0)
        layout.addWidget(self.plot)

    def curves(self) -> List[str]:
        """Names of the curves drawn."""
        return list(self._data)

    def points(self, name: str) -> int:
        """How many points curve ``name`` holds."""
        data = self._data.get(name)
        return len(data[0]) if data else 0

    def add(self, name: str, samples: List[Tuple[float, float]]) -> None:
        """Append (unix time, value) samples to curve ``name`` (created on first use)."""
        if not samples:
            return
        data = self._data.get(name)
        if data is None:
            data = self._data[name] = (collections.deque(maxlen=self._points),
                                       collections.deque(maxlen=self._points))
        xs, ys = data
        for t, y in samples:
            xs.append(t)
            ys.append(float(y))
        self._dirty.add(name)

    def remove(self, prefix: str) -> None:
        """Drop curve ``prefix`` and every curve whose name starts with ``prefix + '['``."""
        for name in [n for n in self._data if n == prefix or n.startswith(prefix + "[")]:
            del self._data[name]
            curve = self._curves.pop(name, None)
            if curve is not None and self.plot is not None:
                self.plot.getPlotItem().removeItem(curve)
                self._legend.removeItem(curve)
        self._update_empty()

    def redraw(self) -> None:
        """Draw what changed; the x axis is seconds relative to now."""
        if self.plot is None or not self._data:
            return
        now = time.time()
        pg = self._pg
        oldest = now
        for name in list(self._data):
            xs, ys = self._data[name]
            curve = self._curves.get(name)
            if curve is None:
                color = _PALETTE[len(self._curves) % len(_PALETTE)]
                curve = self._curves[name] = self.plot.plot(
                    name=name, pen=pg.mkPen(color, width=2), symbol=None)
                self._update_empty()
                self.plot.getPlotItem().enableAutoRange(axis="y")
            if xs:
                curve.setData([x - now for x in xs], list(ys))
                oldest = min(oldest, xs[0])
        # grow the time window with the data, up to ``span`` seconds
        shown = min(self.span, max(10.0, (now - oldest) * 1.1))
        self.plot.getPlotItem().setXRange(-shown, 0, padding=0.01)
        self._dirty.clear()

    def _update_empty(self) -> None:
        if self.plot is not None:
            self._empty.setVisible(not self._curves)
