"""Start-up and stop time of Server.serve_in_process, against the interpreter's own start-up.

Run: ``python benchmarks/bench_process.py [-n 10] [--json FILE]``. Prints a table
of medians (and min/max) over ``n`` starts and writes them as JSON (default
benchmarks/process_startup.json). Runs on the main thread of its own process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

from example import MultiplyBy  # noqa: E402

from pizco_qt import Server  # noqa: E402


def _spawn(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def measure(n: int) -> dict:
    """Medians over ``n`` runs, in seconds."""
    python_floor = [_spawn("pass") for _ in range(n)]
    import_floor = [_spawn("import pizco_qt") for _ in range(n)]
    start, first_call, stop = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        proxy = Server.serve_in_process(MultiplyBy, (2,))
        t1 = time.perf_counter()
        proxy.calculate(1)
        t2 = time.perf_counter()
        proxy._proxy_stop_server()
        t3 = time.perf_counter()
        start.append(t1 - t0)
        first_call.append(t2 - t1)
        stop.append(t3 - t2)
    rows = {"python -c pass": python_floor, "python -c 'import pizco_qt'": import_floor,
            "serve_in_process -> proxy ready": start, "first call": first_call,
            "_proxy_stop_server (child reaped)": stop}
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
            for name, v in rows.items()}


def main() -> int:
    """Run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="starts to measure (default 10)")
    parser.add_argument("--json", default=os.path.join(HERE, "process_startup.json"), help="output file")
    ns = parser.parse_args()
    results = measure(ns.n)
    print(f"{'':38s} {'median':>9s} {'min':>9s} {'max':>9s}   (ms, n={ns.n})")
    for name, r in results.items():
        print(f"{name:38s} {r['median'] * 1e3:9.1f} {r['min'] * 1e3:9.1f} {r['max'] * 1e3:9.1f}")
    meta = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(ns.json, "w") as f:
        json.dump({"meta": meta, "seconds": results}, f, indent=2)
    print(f"wrote {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
