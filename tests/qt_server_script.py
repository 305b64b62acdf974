"""Serve a qt_objects.Meter in this process: ``python qt_server_script.py REP_ENDPOINT``.

Prints ``ready rep=<endpoint> pub=<endpoint>`` and serves until stdin closes or
the process is killed. Used by the connection-state tests to stop and restart a
server process on the same REP endpoint.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from qt_objects import Meter  # noqa: E402

from pizco_qt import Server  # noqa: E402


def main() -> None:
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0"
    server = Server(Meter(), rep_endpoint=endpoint)
    print(f"ready rep={server.rep_endpoint} pub={server.pub_endpoint}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes the pipe (or kills us)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
