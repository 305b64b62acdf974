"""The seed scenario: examples/server.py and examples/client.py as two real processes."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

EXAMPLES = os.path.join(ROOT, "examples")


def test_seed_scenario_two_processes():
    server = subprocess.Popen([sys.executable, "-u", os.path.join(EXAMPLES, "server.py"), "tcp://127.0.0.1:0"],
                              cwd=EXAMPLES, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("pizco-server ready rep="), server.stderr.read() if server.poll() is not None else line
        endpoint = line.split("rep=")[1].split()[0]
        client = subprocess.run([sys.executable, os.path.join(EXAMPLES, "client.py"), endpoint], cwd=EXAMPLES,
                                capture_output=True, text=True, timeout=60)
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines() == [
            "2 * 8 = 16",
            "The factor was changed from 2 to 3",
            "3 * 8 = 24",
            "The factor was changed from 3 to 4",
            "4 * 8 = 32",
            "The factor was changed from 4 to 5",
            "5 * 8 = 40",
        ]
        assert "Traceback" not in client.stderr
    finally:
        server.terminate()
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
