"""Benchmark pizco_qt against raw pyzmq (the floor), Pyro5 and RPyC in one run.

Usage::

    python benchmarks/run.py [--quick] [--json results.json] [--markdown] [--readme README.md]
                             [--systems a,b]

Each system's server runs in its own process; the client measurements run in
other processes (one without a QApplication, one with an offscreen
QApplication, four for the multi-process row), all on 127.0.0.1. Every figure
is also given as a ratio to the raw pyzmq REQ/REP floor measured in the same
run (value / floor: below 1 is faster for times, slower for rates).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peers import NOTIFYING, SYSTEMS, available  # noqa: E402
from workloads import parse_result  # noqa: E402

FLOOR = "raw_reqrep"

QUICK = {"rounds": 2, "rounds_all": 1, "calls": 600, "duration": 0.4, "repeats": 4,
         "budget": 0.4, "at_least": 1, "burst": 20_000, "bursts": 1, "paced": 0.5}
FULL = {"rounds": 8, "rounds_all": 3, "calls": 3000, "duration": 2.0, "repeats": 15,
        "budget": 3.0, "at_least": 3, "burst": 100_000, "bursts": 3, "paced": 2.0}

#: (key, label, unit, lower_is_better)
ROWS: List[Tuple[str, str, str, bool]] = [
    ("call_median_us", "sync call, median", "us", True),
    ("call_p99_us", "sync call, p99", "us", True),
    ("attr_median_us", "attribute read, median", "us", True),
    ("attr_p99_us", "attribute read, p99", "us", True),
    ("calls_1_thread", "calls/s, 1 thread", "/s", False),
    ("calls_4_threads", "calls/s, 4 threads, one proxy", "/s", False),
    ("calls_4_procs", "calls/s, 4 processes", "/s", False),
    ("bytes_1MB", "1 MB bytes round trip", "MB/s", False),
    ("bytes_16MB", "16 MB bytes round trip", "MB/s", False),
    ("numpy_16MB", "16 MB numpy array round trip", "MB/s", False),
    ("callback_rate", "notifications/s to a callback", "/s", False),
    ("callback_lost_at_max", "  lost of the bursts", "", True),
    ("callback_lost_at_10k", "  lost at 10,000/s", "", True),
    ("callback_latency_1k_median_us", "emit-to-callback at 1,000/s, median", "us", True),
    ("callback_latency_1k_p99_us", "emit-to-callback at 1,000/s, p99", "us", True),
    ("gui_rate", "notifications/s to a GUI slot", "/s", False),
    ("gui_lost_at_max", "  lost of the bursts", "", True),
    ("gui_lost_at_10k", "  lost at 10,000/s", "", True),
    ("gui_latency_1k_median_us", "emit-to-GUI-slot at 1,000/s, median", "us", True),
    ("gui_latency_1k_p99_us", "emit-to-GUI-slot at 1,000/s, p99", "us", True),
    ("gui_lag_p99_ms_10k", "GUI loop lag p99 at 10,000/s", "ms", True),
    ("gui_lag_lost_10k", "  lost meanwhile", "", True),
    ("gui_lag_p99_ms_10k_coalesced", "GUI loop lag p99 at 10,000/s, coalesced", "ms", True),
    ("bind_100_ms", "bind 100 widgets", "ms", True),
    ("bind_100_ready_ms", "  until all 100 show their value", "ms", True),
    ("bind_lag_p99_ms", "GUI loop lag p99, 100 bound labels at 10 Hz", "ms", True),
    ("bind_labels_updated", "  labels updated meanwhile (of 100)", "", False),
]


def machine() -> Dict[str, Any]:
    """What the figures were measured on."""
    import zmq

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "platform": platform.platform()}


class ServerProcess:
    """A system's server in its own process (stops when its stdin closes)."""

    def __init__(self, system: str) -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "peers.py"), system],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the {system} server did not start: {line!r}")
        self.info = json.loads(line[6:])

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_phase(phase: str, system: str, info: Dict[str, Any], settings: Dict[str, Any]) -> Dict[str, Any]:
    """Run one phase of client measurements in a fresh process."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, os.path.join(HERE, "workloads.py"), phase, system, json.dumps(info),
                          json.dumps(settings)], stdout=subprocess.PIPE, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{phase} of {system} failed with status {out.returncode}")
    return parse_result(out.stdout)


def has_binding() -> bool:
    """Whether pizco_qt.bind exists in this checkout."""
    try:
        import importlib.util

        return importlib.util.find_spec("pizco_qt.binding") is not None
    except Exception:
        return False


def best_of(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per figure, the best of several rounds (these shared machines are noisy)."""
    best: Dict[str, Any] = {}
    lower = {key for key, _, _, low in ROWS if low}
    for res in rounds:
        for key, value in res.items():
            old = best.get(key)
            if old is None or (value < old if key in lower else value > old):
                best[key] = value
    return best


def bench(systems: List[str], settings: Dict[str, Any], log: Any = sys.stderr) -> Dict[str, Dict[str, Any]]:
    """Measure every system; returns {system: {row key: value}}.

    All servers run at once; the call, thread, process and payload rows are
    measured in interleaved rounds (the best round kept per figure: these shared
    machines are noisy, and a client and its server on 2 cores flip between
    sharing a core and waking each other across cores, which doubles a round
    trip), the notification and GUI rows once per system.
    """
    servers: Dict[str, ServerProcess] = {}
    results: Dict[str, Dict[str, Any]] = {}
    try:
        for system in systems:
            if not available(system):
                print(f"{system}: not installed, skipped", file=log)
                continue
            try:
                servers[system] = ServerProcess(system)
            except Exception as exc:
                print(f"{system}: {exc}", file=log)
        rounds: Dict[str, List[Dict[str, Any]]] = {s: [] for s in servers}
        for i in range(settings["rounds"]):
            repeated = ["lat"] + (["payload", "procs"] if i < settings["rounds_all"] else [])
            for system, server in servers.items():
                res: Dict[str, Any] = {}
                for phase in repeated:
                    try:
                        res.update(run_phase(phase, system, server.info, settings))
                    except Exception as exc:  # a failing peer must not sink the whole run
                        print(f"{system} {phase}: {exc}", file=log)
                rounds[system].append(res)
            print(f"round {i + 1}/{settings['rounds']} done", file=log)
        for system, server in servers.items():
            res = best_of(rounds[system])
            phases = []
            if system in NOTIFYING:
                phases += ["notify", "gui"]
            if system == "pizco_qt" and has_binding():
                phases.append("bind")
            for phase in phases:
                try:
                    res.update(run_phase(phase, system, server.info, settings))
                except Exception as exc:
                    print(f"{system} {phase}: {exc}", file=log)
            results[system] = res
    finally:
        for server in servers.values():
            server.stop()
    return results


def ratios(results: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """value / floor for every figure that the floor also has."""
    floor = results.get(FLOOR, {})
    out: Dict[str, Dict[str, float]] = {}
    for system, res in results.items():
        out[system] = {}
        for key, value in res.items():
            base = floor.get(key)
            if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
                out[system][key] = value / base
    return out


def fmt(value: Any, unit: str) -> str:
    """A figure for the table."""
    if value is None:
        return "-"
    if unit == "":
        return f"{int(value)}"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(results: Dict[str, Dict[str, Any]], rat: Dict[str, Dict[str, float]], markdown: bool) -> str:
    """The results as a text (or markdown) table with ratios to the floor."""
    systems = [s for s in SYSTEMS if s in results]
    header = ["row", "unit"] + systems
    lines = []
    rows = []
    for key, label, unit, _ in ROWS:
        if not any(key in results[s] for s in systems):
            continue
        cells = [label, unit]
        for s in systems:
            v = results[s].get(key)
            r = rat.get(s, {}).get(key)
            if v is None:
                cells.append("-")
            elif r is None or s == FLOOR or unit == "":
                cells.append(fmt(v, unit))
            else:
                cells.append(f"{fmt(v, unit)} ({r:.2f}x)")
        rows.append(cells)
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * 2 + ["---:"] * len(systems)) + "|")
        for cells in rows:
            lines.append("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(str(c[i])) for c in rows + [header]) for i in range(len(header))]
        for cells in [header] + rows:
            lines.append("  ".join(str(c).ljust(widths[i]) if i < 2 else str(c).rjust(widths[i])
                                   for i, c in enumerate(cells)))
    return "\n".join(lines)


README_START = "<!-- benchmark table: start (written by benchmarks/run.py --readme) -->"
README_END = "<!-- benchmark table: end -->"


def update_readme(path: str, info: Dict[str, Any], mode: str, markdown_table: str) -> None:
    """Replace the table between the README's benchmark markers (nothing else is touched)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path} has no benchmark markers ({README_START!r} ... {README_END!r})")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = (f"{README_START}\n"
             f"Measured {info['date']} ({mode} run) on {info['nproc']} CPUs ({info['cpu']}), "
             f"Python {info['python']}, pyzmq {info['pyzmq']} / libzmq {info['libzmq']}; "
             f"ratios are value / raw REQ/REP in the same run.\n\n{markdown_table}\n{README_END}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + block + tail)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (under a minute)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--readme", metavar="PATH", help="also write the markdown table into PATH between "
                        "its benchmark markers (README.md)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {','.join(SYSTEMS)} (the floor is always run)")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)}")
    if FLOOR not in systems:
        systems.insert(0, FLOOR)
    settings = QUICK if args.quick else FULL
    info = machine()
    print(f"{info['date']}  {info['nproc']} CPUs  {info['cpu']}  Python {info['python']}  "
          f"pyzmq {info['pyzmq']} / libzmq {info['libzmq']}  ({'quick' if args.quick else 'full'})",
          file=sys.stderr)
    t0 = time.monotonic()
    results = bench(systems, settings)
    rat = ratios(results)
    print(table(results, rat, args.markdown))
    print(f"(ratios are value / {FLOOR} in this run; total {time.monotonic() - t0:.0f} s)")
    mode = "quick" if args.quick else "full"
    if args.readme:
        update_readme(args.readme, info, mode, table(results, rat, True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "mode": mode, "settings": settings,
                       "results": results, "ratios": rat}, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
