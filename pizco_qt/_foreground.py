"""What the foreground command-line programs (pizco-registry, pizco-station) share.

``stop_on_signals()`` turns SIGINT and SIGTERM into a stop flag for the time of
a ``with`` block and puts the previous handlers back after it.

Thread affinity: main thread (Python installs signal handlers only there).
"""
from __future__ import annotations

import contextlib
import signal as _signal
import threading
from typing import Any, Iterator


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """A ``threading.Event`` set by SIGINT or SIGTERM while the block runs."""
    stop = threading.Event()
    previous = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        previous[sig] = _signal.signal(sig, on_signal)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)
