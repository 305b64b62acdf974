"""A small server process for the reliability tests.

``python stage_server.py REP [PUB] [LOG]`` serves a Counter on REP (and PUB),
prints ``pizco-server ready rep=<endpoint> pub=<endpoint>`` and serves until its
stdin closes or it is killed. Each executed ``record(token)`` is appended to LOG
(one line, flushed at once) so a test can count executions across restarts.
"""
from __future__ import annotations

import os
import sys
import threading

from pizco_qt import Server, Signal


class Counter:
    """Counts and records the calls it gets; ``ticked`` is emitted by ``tick``."""

    ticked = Signal(int)

    def __init__(self, log: str = "") -> None:
        self.calls = 0
        self._log = open(log, "a", buffering=1) if log else None

    def record(self, token: str) -> str:
        self.calls += 1
        if self._log is not None:
            self._log.write(token + "\n")
            self._log.flush()
            os.fsync(self._log.fileno())
        return token

    def tick(self, n: int) -> int:
        self.ticked.emit(n)
        return n

    def pid(self) -> int:
        return os.getpid()


def main() -> None:
    rep = sys.argv[1]
    pub = sys.argv[2] if len(sys.argv) > 2 else "tcp://127.0.0.1:0"
    log = sys.argv[3] if len(sys.argv) > 3 else ""
    server = Server(Counter(log), rep, pub)
    print(f"pizco-server ready rep={server.rep_endpoint} pub={server.pub_endpoint}", flush=True)
    done = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
