"""A GUI receiving 10,000 emissions per second keeps its event loop responsive.

Only generous sanity bounds here (shared 2-core machines); the exact figures
belong to the benchmark. The lag is how late a 5 ms QTimer fires.
"""
from __future__ import annotations

import time

from qtpy import QtCore, QtWidgets

from qt_objects import Meter

RATE, SECONDS = 10_000, 1.0
TOTAL = int(RATE * SECONDS)


class LagProbe:
    """Measures how late a 5 ms timer fires on the GUI thread."""

    def __init__(self) -> None:
        self.lags = []
        self._last = None
        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start(5)

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lags.append(max(0.0, now - self._last - 0.005))
        self._last = now

    def p99(self) -> float:
        lags = sorted(self.lags)
        return lags[int(0.99 * (len(lags) - 1))]


def _run(qtbot, served, coalesce: bool):
    _, proxy = served(Meter())
    label = QtWidgets.QLabel()
    qtbot.addWidget(label)
    got = []

    def slot(i):
        got.append(i)
        label.setNum(i)

    proxy.count.connect(slot, coalesce=coalesce)
    probe = LagProbe()
    probe.start()
    t0 = time.perf_counter()
    done = proxy.stream.future(RATE, SECONDS)
    try:
        qtbot.waitUntil(lambda: done.done() and got and got[-1] == TOTAL - 1, timeout=30_000)
    finally:
        probe.stop()
    elapsed = time.perf_counter() - t0
    return got, probe, elapsed, label


def test_10000_emissions_per_second_keep_the_event_loop_responsive(qtbot, served):
    got, probe, elapsed, label = _run(qtbot, served, coalesce=False)
    assert got == list(range(TOTAL))  # none lost, in order
    assert label.text() == str(TOTAL - 1)
    assert len(probe.lags) > 20
    p99, worst = probe.p99(), max(probe.lags)
    print(f"\n10k/s for {SECONDS:g} s: delivered {len(got)} in {elapsed:.2f} s "
          f"({len(got) / elapsed:,.0f}/s), timer lag p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert p99 < 0.25, f"event-loop lag p99 {p99 * 1000:.0f} ms"
    assert worst < 1.0


def test_coalesced_flood_keeps_the_latest_value_with_few_calls(qtbot, served):
    got, probe, elapsed, label = _run(qtbot, served, coalesce=True)
    assert got[-1] == TOTAL - 1 and got == sorted(set(got))
    assert label.text() == str(TOTAL - 1)
    p99 = probe.p99()
    print(f"\ncoalesced 10k/s: {len(got)} slot calls for {TOTAL} emissions, "
          f"timer lag p99 {p99 * 1000:.1f} ms")
    assert len(got) < TOTAL  # at most one call per turn of the loop
    assert p99 < 0.25
