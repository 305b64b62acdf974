"""Client-side measurements, run in a client process separate from the server.

``python benchmarks/workloads.py PHASE SYSTEM INFO_JSON SETTINGS_JSON`` prints one
line ``RESULT <json>``. Phases: ``lat`` (latency, calls/s from 1 and 4 threads), ``payload``
(large round trips), ``notify`` (plain-callback notifications; no QApplication
in the process), ``procs`` (4 client processes, each a ``worker``), ``gui`` (QApplication offscreen: GUI-thread slot
deliveries and event-loop lag), ``bind`` (pizco_qt.bind on 100 widgets).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peers import NOTIFYING, make_client  # noqa: E402

MB = 1 << 20
now = time.perf_counter


def percentile(values: List[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` (nearest rank)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[k]


def latency(fn: Callable[[], Any], n: int) -> Dict[str, float]:
    """Median and p99 of ``n`` timed calls (microseconds), after a warm-up."""
    for _ in range(max(50, n // 10)):
        fn()
    times = []
    for _ in range(n):
        t0 = now()
        fn()
        times.append(now() - t0)
    return {"median_us": statistics.median(times) * 1e6, "p99_us": percentile(times, 0.99) * 1e6}


def throughput(client: Any, threads: int, duration: float) -> float:
    """Calls per second from ``threads`` threads (sharing the client where it allows)."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1, timeout=60)
    stop_at = [0.0]

    def run(i: int) -> None:
        # a client that cannot be shared is made in the thread that uses it
        c = client if client.shared_across_threads else client.for_thread()
        for _ in range(20):
            c.call(1)
        start.wait()
        k = 0
        end = stop_at[0]
        while True:
            c.call(1)
            k += 1
            if k % 16 == 0 and now() >= end:
                break
        counts[i] = k
        if c is not client:
            c.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    stop_at[0] = now() + duration
    t0 = now()
    start.wait()
    for t in ts:
        t.join()
    elapsed = now() - t0
    return sum(counts) / elapsed


def payload(client: Any, data: Any, size: int, repeats: int, budget: float = 2.0,
            at_least: int = 3) -> Dict[str, float]:
    """Round trips of ``data`` (``size`` bytes): MB/s = size / median round-trip time.

    At most ``repeats`` round trips, and no more than ``at_least`` once ``budget`` seconds are spent.
    """
    back = client.call(data)
    if len(back) != len(data):
        raise AssertionError("payload came back changed")
    times: List[float] = []
    end = now() + budget
    while len(times) < repeats and (len(times) < at_least or now() < end):
        t0 = now()
        client.call(data)
        times.append(now() - t0)
    med = statistics.median(times)
    return {"MBps": size / MB / med, "median_ms": med * 1e3}


class Collector:
    """Counts and timestamps notifications (any thread)."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.lat: List[float] = []
        self.record_latency = False

    def __call__(self, i: int, t: float) -> None:
        tn = now()
        if self.count == 0:
            self.first = tn
        self.count += 1
        self.last = tn
        if self.record_latency:
            self.lat.append(tn - t)

    def reset(self, record_latency: bool = False) -> None:
        self.count = 0
        self.lat = []
        self.record_latency = record_latency


def wait_for(col: Collector, n: int, quiet: float, pump: Callable[[float], None]) -> None:
    """Wait until ``n`` arrived, or nothing arrived for ``quiet`` seconds."""
    last_count, last_change = -1, now()
    while col.count < n:
        pump(0.01)
        if col.count != last_count:
            last_count, last_change = col.count, now()
        elif now() - last_change > quiet:
            break


def notifications(client: Any, col: Collector, pump: Callable[[float], None], settings: Dict[str, Any],
                  prefix: str) -> Dict[str, Any]:
    """Max rate, loss at 10,000/s and latency at 1,000/s for one subscribed sink."""
    out: Dict[str, Any] = {}
    col.reset()  # warm-up (allocators, threads, caches), as for the other rows
    client.burst(2000, 0)
    wait_for(col, 2000, 3.0, pump)
    n = settings["burst"]
    rates, lost = [], 0
    for _ in range(settings["bursts"]):  # best of a few bursts: these machines are noisy
        col.reset()
        t0 = now()
        client.burst(n, 0)
        wait_for(col, n, 3.0, pump)
        rates.append(col.count / max(1e-9, col.last - t0))
        lost += n - col.count
    out[f"{prefix}_rate"] = max(rates)
    out[f"{prefix}_lost_at_max"] = lost
    n10 = int(10_000 * settings["paced"])
    col.reset()
    client.burst(n10, 10_000)
    wait_for(col, n10, 3.0, pump)
    out[f"{prefix}_lost_at_10k"] = n10 - col.count
    n1 = int(1_000 * settings["paced"])
    col.reset(record_latency=True)
    client.burst(n1, 1_000)
    wait_for(col, n1, 3.0, pump)
    lat = col.lat
    out[f"{prefix}_latency_1k_median_us"] = statistics.median(lat) * 1e6 if lat else float("nan")
    out[f"{prefix}_latency_1k_p99_us"] = percentile(lat, 0.99) * 1e6
    return out


def phase_lat(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    """Call and attribute latency, calls/s from 1 and 4 threads (one round)."""
    client = make_client(system, info)
    r: Dict[str, Any] = {}
    lat = latency(lambda: client.call(1), s["calls"])
    r["call_median_us"], r["call_p99_us"] = lat["median_us"], lat["p99_us"]
    lat = latency(client.attr, s["calls"])
    r["attr_median_us"], r["attr_p99_us"] = lat["median_us"], lat["p99_us"]
    r["calls_1_thread"] = throughput(client, 1, s["duration"])
    r["calls_4_threads"] = throughput(client, 4, s["duration"])
    client.close()
    return r


def phase_payload(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    """Payload round trips: 1 MB and 16 MB of bytes, a 16 MB numpy array."""
    client = make_client(system, info)
    r: Dict[str, Any] = {}
    one = os.urandom(MB)
    bounds = {"budget": s["budget"], "at_least": s["at_least"]}
    r["bytes_1MB"] = payload(client, one, MB, s["repeats"] * 4, **bounds)["MBps"]
    big = os.urandom(16 * MB)
    r["bytes_16MB"] = payload(client, big, 16 * MB, s["repeats"], **bounds)["MBps"]
    del big
    try:
        import numpy
    except ImportError:
        numpy = None
    if numpy is not None and system in ("raw_reqrep", "raw_dealer", "pizco_qt"):
        arr = numpy.random.default_rng(1).random(2 * MB)  # 16 MB of float64
        r["numpy_16MB"] = payload(client, arr, 16 * MB, s["repeats"], **bounds)["MBps"]
    client.close()
    return r


def phase_notify(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    """Notifications to a plain callback (no QApplication in this process)."""
    client = make_client(system, info)
    col = Collector()
    client.subscribe(col)
    r = notifications(client, col, time.sleep, s, "callback")
    client.unsubscribe()
    client.close()
    return r


def phase_worker(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    client = make_client(system, info)
    for _ in range(20):
        client.call(1)
    start_at = s["start_at"]  # a shared perf_counter instant (system-wide clock)
    while now() < start_at:
        time.sleep(0.001)
    end, k = start_at + s["duration"], 0
    while True:
        client.call(1)
        k += 1
        if k % 16 == 0 and now() >= end:
            break
    elapsed = now() - start_at
    client.close()
    return {"calls": k, "elapsed": elapsed}


def phase_procs(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    """4 client processes calling concurrently; total calls/s."""
    settings = dict(s, start_at=now() + 3.0)
    procs = [subprocess.Popen([sys.executable, __file__, "worker", system, json.dumps(info), json.dumps(settings)],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=120)
        res = parse_result(out)
        total += res["calls"] / res["elapsed"]
    return {"calls_4_procs": total}


def measure_lag(app: Any, run_for: float, done: Callable[[], bool]) -> float:
    """p99 (ms) of how late a 5 ms precise QTimer fires while ``app`` processes events."""
    from qtpy.QtCore import QElapsedTimer, Qt, QTimer

    lags: List[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(5)
    prev = [0]

    def tick() -> None:
        t = clock.nsecsElapsed()
        lags.append(max(0.0, (t - prev[0]) / 1e9 - 0.005))
        prev[0] = t

    timer.timeout.connect(tick)
    clock.start()
    prev[0] = clock.nsecsElapsed()
    timer.start()
    end = now() + run_for
    while now() < end and not done():
        app.processEvents()
        time.sleep(0.0002)
    timer.stop()
    return percentile(lags[1:], 0.99) * 1e3


def phase_gui(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    from qtpy.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([])
    client = make_client(system, info)
    label = QLabel("0")
    col = Collector()

    def slot(i: int, t: float) -> None:
        col(i, t)
        label.setNum(i)

    def pump(seconds: float) -> None:
        end = now() + seconds
        while now() < end:
            app.processEvents()
            time.sleep(0.0005)

    client.subscribe(slot, gui=True)
    r = notifications(client, col, pump, s, "gui")
    n = int(10_000 * s["paced"])
    col.reset()
    client.burst(n, 10_000)
    r["gui_lag_p99_ms_10k"] = measure_lag(app, s["paced"] + 3.0, lambda: col.count >= n)
    r["gui_lag_lost_10k"] = n - col.count
    client.unsubscribe()
    if system == "pizco_qt":  # the opt-in: the latest emission per turn of the loop
        col.reset()
        client.proxy.changed.connect(slot, coalesce=True)
        client.burst(n, 10_000)
        r["gui_lag_p99_ms_10k_coalesced"] = measure_lag(app, s["paced"] + 0.2, lambda: False)
        client.proxy.changed.disconnect(slot)
    client.close()
    return r


def phase_bind(system: str, info: Dict[str, Any], s: Dict[str, Any]) -> Dict[str, Any]:
    """pizco_qt.bind: time to bind 100 labels; GUI lag p99 with 100 labels at 10 Hz each."""
    import pizco_qt
    from qtpy.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([])
    client = make_client(system, info)
    proxy = client.proxy
    labels = [QLabel() for _ in range(100)]
    t0 = now()
    bindings = [pizco_qt.bind(lab, proxy, f"v{k}", signal=f"s{k}") for k, lab in enumerate(labels)]
    bind_s = now() - t0
    # every binding reads its value once and subscribes: wait until all show it
    end = now() + 10
    while now() < end and not all(lab.text() == "0" for lab in labels):
        app.processEvents()
        time.sleep(0.001)
    ready_s = now() - t0
    seconds = max(1.0, s["paced"])
    proxy.emit_each(10, seconds)  # 100 signals at 10 Hz each
    lag = measure_lag(app, seconds + 0.2, lambda: False)
    shown = sum(lab.text() not in ("", "0") for lab in labels)
    for b in bindings:
        b.unbind()
    client.close()
    return {"bind_100_ms": bind_s * 1e3, "bind_100_ready_ms": ready_s * 1e3, "bind_lag_p99_ms": lag,
            "bind_labels_updated": shown}


def parse_result(out: str) -> Dict[str, Any]:
    """The RESULT line of a phase's output."""
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no result in output: {out[-500:]!r}")


PHASES = {"lat": phase_lat, "payload": phase_payload, "notify": phase_notify, "worker": phase_worker, "procs": phase_procs, "gui": phase_gui, "bind": phase_bind}

if __name__ == "__main__":
    phase, system, info, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    result = PHASES[phase](system, info, settings)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)
