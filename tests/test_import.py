"""Importing pizco_qt creates no QApplication, imports no QtWidgets and needs no
display; a QApplication created later is adopted (subprocesses, so nothing of
this test process leaks in)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import HERE, ROOT


def run_python(code: str, env_extra=None, drop=(), timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join([HERE, ROOT, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_import_creates_no_application_and_no_widgets_without_a_display():
    code = """
        import json, sys
        import pizco_qt
        from pizco_qt import Proxy, Server, Signal, FutureWatcher
        from qtpy import QtCore
        widgets = sorted(m for m in sys.modules if m.endswith("QtWidgets"))
        print(json.dumps({"app": QtCore.QCoreApplication.instance() is not None, "widgets": widgets,
                          "api": __import__("qtpy").API_NAME}))
    """
    # no display at all and no platform plugin chosen: importing must not need one
    proc = run_python(code, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"app": False, "widgets": [], "api": out["api"]}
    assert out["api"].lower() == os.environ.get("QT_API", out["api"]).lower()


def test_serving_and_calling_without_any_application():
    code = """
        import json, threading
        from qtpy import QtCore
        from pizco_qt import Proxy, Server
        from qt_objects import Meter

        server = Server(Meter())
        proxy = Proxy(server.rep_endpoint, timeout=10)
        got, done = [], threading.Event()
        proxy.value_changed.connect(lambda v: (got.append((v, threading.current_thread().name)), done.set()))
        proxy.set_value("plain")
        ok = done.wait(10)
        print(json.dumps({"ok": ok, "got": got, "app": QtCore.QCoreApplication.instance() is not None}))
        proxy._proxy_stop_me()
        server.stop()
    """
    proc = run_python(code, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"ok": True, "got": [["plain", "pizco-dispatcher"]], "app": False}


def test_an_application_created_after_the_proxy_is_adopted():
    code = """
        import json, threading
        from qtpy import QtCore
        from pizco_qt import Proxy, Server
        from qt_objects import Meter

        server = Server(Meter())
        proxy = Proxy(server.rep_endpoint, timeout=10)   # before any application exists
        got = []
        def record(tag):
            return lambda v: got.append((tag, v, threading.current_thread().name,
                                         QtCore.QThread.currentThread() is app.thread()))
        proxy.value_changed.connect(record("early"))
        app = QtCore.QCoreApplication([])                # created afterwards
        proxy.value_changed.connect(record("late"))

        def check():
            if len(got) >= 2:
                app.quit()
        poll = QtCore.QTimer()
        poll.timeout.connect(check)
        poll.start(10)
        QtCore.QTimer.singleShot(10_000, app.quit)       # bounded
        fut = proxy.set_value.future("adopted")
        app.exec_() if hasattr(app, "exec_") else app.exec()
        print(json.dumps({"got": sorted(got), "result": fut.result(5)}))
        proxy._proxy_stop_me()
        server.stop()
    """
    proc = run_python(code, env_extra={"QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["result"] == "adopted"
    assert out["got"] == [["early", "adopted", "MainThread", True], ["late", "adopted", "MainThread", True]]
