"""docs/screenshots.py still makes the README's screenshots of the monitor and the status window."""
from __future__ import annotations

import os
import subprocess
import sys

from qtpy import QtGui

from conftest import ROOT


def test_screenshots_script_writes_both_windows(tmp_path, qapp):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("PZC_REGISTRY", None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "screenshots.py"), "--quick", str(tmp_path)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for name in ("monitor.png", "status-window.png"):
        image = QtGui.QImage(str(tmp_path / name))
        assert not image.isNull(), f"{name} was not written"
        width, height = image.width(), image.height()
        assert width >= 800 and height >= 500, f"{name} is {width}x{height}"
        colours = {image.pixel(x, y) for x in range(0, width, 37) for y in range(0, height, 29)}
        assert len(colours) > 20, f"{name} looks blank"
