"""Shared fixtures: servers and proxies that are always closed, and a leak check."""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, List

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if not os.environ.get("XDG_RUNTIME_DIR"):  # else Qt warns, and Qt warnings fail tests
    import tempfile

    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="pizco-qt-xdg-")  # mode 0700

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        event.wait(interval)


def wait_until_turning(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """``wait_until``, turning the main thread's Qt loop when an application exists.

    For tests that subscribe from the main thread like a plain script: once an earlier test
    has created a Q(Core)Application, deliveries to the main thread are queued to its loop.
    """
    app = None
    if "qtpy" in sys.modules:
        from qtpy import QtCore

        app = QtCore.QCoreApplication.instance()

    def turned():
        if app is not None:
            app.processEvents()
        return predicate()

    return wait_until(turned, timeout)


def without_capability(monkeypatch: Any, capability: str) -> None:
    """Make every Server of the test stop advertising ``capability`` in its info."""
    from pizco_qt import Server

    original = Server._info

    def info_without(self):
        info = original(self)
        info["capabilities"] = [c for c in info["capabilities"] if c != capability]
        return info

    monkeypatch.setattr(Server, "_info", info_without)


def pytest_report_header(config: Any) -> List[str]:
    import zmq
    from qtpy import API_NAME, QT_VERSION

    return [f"pizco_qt tests: Python {sys.version.split()[0]}, {API_NAME} (Qt {QT_VERSION}), "
            f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"]


@pytest.fixture
def served():
    """Factory: ``served(obj, **server_kwargs) -> (server, proxy)``; everything is stopped after the test."""
    from pizco_qt import Proxy, Server

    made: List[Any] = []

    def _served(obj: Any, proxy_timeout: float = 5.0, **kwargs: Any):
        kwargs.setdefault("rep_endpoint", "tcp://127.0.0.1:0")
        kwargs.setdefault("pub_endpoint", "tcp://127.0.0.1:0")
        server = Server(obj, **kwargs)
        made.append(server)
        proxy = Proxy(server.rep_endpoint, timeout=proxy_timeout, protocol=kwargs.get("protocol"))
        made.append(proxy)
        return server, proxy

    yield _served
    for thing in reversed(made):
        if hasattr(thing, "_proxy_stop_me"):
            thing._proxy_stop_me()
        else:
            thing.stop()


@pytest.fixture
def closing():
    """Register servers, proxies and agents to be stopped after the test (returns its argument)."""
    from pizco_qt import Proxy

    things: List[Any] = []

    def _add(thing: Any) -> Any:
        things.append(thing)
        return thing

    yield _add
    for thing in reversed(things):
        if isinstance(thing, Proxy):
            thing._proxy_stop_me()
        else:
            thing.stop()


@pytest.fixture(autouse=True)
def no_leaks():
    """Every test must stop every agent it started: no I/O users, no server threads left."""
    yield
    from pizco_qt import agent, iothread

    def clean() -> bool:
        servers = [t for t in threading.enumerate() if t.name.startswith("pizco-server ")]
        return iothread._users == 0 and not servers

    try:
        wait_until(clean, timeout=5)
    except AssertionError:
        live = [repr(a) for a in list(agent._live_agents)]
        pytest.fail(f"leaked: {iothread._users} I/O users, live agents {live}, threads "
                    f"{[t.name for t in threading.enumerate()]}")


@pytest.fixture
def reg_server(monkeypatch):
    """A registry on a free port; PZC_REGISTRY points at it."""
    from pizco_qt import registry

    server = registry.serve_registry("tcp://127.0.0.1:0")
    monkeypatch.setenv("PZC_REGISTRY", server.rep_endpoint)
    yield server
    server.stop()
