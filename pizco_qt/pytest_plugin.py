"""pytest fixtures for users' own tests of GUIs and scripts that use pizco_qt.

Registered through the ``pytest11`` entry point. This module imports neither Qt
nor pizco_qt at import time, so it costs nothing in projects that do not use it.

Thread affinity: fixtures run on pytest's main thread.
"""
from __future__ import annotations
