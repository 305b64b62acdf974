"""Helpers for tests that run real processes: ready lines with deadlines, stderr on failure."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from typing import Any, List, Optional, Sequence, Tuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
READY = re.compile(r"^pizco-server ready rep=(\S+) pub=(\S+)$")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, e.g. an orphan its new parent has not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class Child:
    """A subprocess whose stdout lines are queued and whose stderr is collected."""

    def __init__(self, argv: Sequence[str], env: Optional[dict] = None, cwd: Optional[str] = None) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.argv = list(argv)
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=full_env, cwd=cwd)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._threads = [threading.Thread(target=self._read, args=(self.popen.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.popen.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if is_stdout:
                self.stdout.append(line)
                self.lines.put(line)
            else:
                self.stderr.append(line)
        if is_stdout:
            self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def line(self, timeout: float = 30.0) -> str:
        """The next stdout line (fails on EOF or after ``timeout``)."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s from {self.argv}\n{self.describe()}") from None
        if line is None:
            self.wait(10)
            raise AssertionError(f"{self.argv} ended before printing a line\n{self.describe()}")
        return line

    def ready(self, timeout: float = 30.0) -> Tuple[str, str]:
        """Wait for the ready line; returns (rep, pub)."""
        line = self.line(timeout)
        m = READY.match(line)
        assert m, f"unexpected first line {line!r}\n{self.describe()}"
        return m.group(1), m.group(2)

    def wait(self, timeout: float) -> int:
        """Wait for the exit status; fails after ``timeout``."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv} still running after {timeout} s\n{self.describe()}") from None
        for t in self._threads:
            t.join(5)
        return rc

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def describe(self) -> str:
        return "--- stdout ---\n" + "\n".join(self.stdout) + "\n--- stderr ---\n" + "\n".join(self.stderr)

    def close(self) -> None:
        """Kill if still running and reap (finalizer)."""
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                stream.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(5)


@pytest.fixture
def spawn():
    """Factory: ``spawn(argv, env=None) -> Child``; every child is killed and reaped after the test."""
    children: List[Child] = []

    def _spawn(argv: Sequence[str], env: Optional[dict] = None, cwd: Optional[str] = None) -> Child:
        child = Child(argv, env, cwd)
        children.append(child)
        return child

    yield _spawn
    for child in children:
        child.close()


def server_argv(*args: str) -> List[str]:
    """``python -m pizco_qt ARGS`` with the tests directory on the child's path."""
    return [sys.executable, "-m", "pizco_qt", *args]


__all__ = ["Child", "spawn", "pid_alive", "server_argv", "HERE", "signal"]
