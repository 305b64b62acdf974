"""pytest fixtures for users' own tests of GUIs and scripts that use pizco_qt.

Registered through the ``pytest11`` entry point, so they are available in any
project where pizco_qt and pytest are installed::

    def test_my_panel(qtbot, pizco_serve_thread):
        proxy = pizco_serve_thread(Instrument)          # or an instance
        panel = MyPanel(proxy)
        with qtbot.waitSignal(proxy.value_changed):
            proxy.value = 3
        assert panel.value_label.text() == "3"

``pizco_serve_thread`` serves an object in background threads of the test
process (fast; the served object is at hand as ``proxy._proxy_local_server.
served_object``); ``pizco_serve_process`` serves a new instance of a class in a
child process (a real second process, as in production). Both are factories
returning a Proxy; everything they start is stopped after the test.

This module imports neither Qt nor pizco_qt at import time, so it costs
nothing in projects that do not use it.

Thread affinity: fixtures run on pytest's main thread.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional

import pytest

__all__ = ["pizco_serve_thread", "pizco_serve_process"]


@pytest.fixture
def pizco_serve_thread() -> Iterator[Callable[..., Any]]:
    """Factory: ``pizco_serve_thread(obj_or_cls, args=(), kwargs=None, *, timeout=None) -> Proxy``.

    Serves ``obj`` (or a new ``cls(*args, **kwargs)``) on loopback ports chosen
    by the system, in background threads of this process, and returns a Proxy
    to it (``timeout``: the proxy's call timeout in seconds). The server is
    available as ``proxy._proxy_local_server``. Proxies and servers are stopped
    after the test.
    """
    from pizco_qt import Proxy, Server

    made: List[Any] = []

    def serve(obj: Any, args: tuple = (), kwargs: Optional[dict] = None, *,
              timeout: Optional[float] = None) -> Any:
        if isinstance(obj, type):
            obj = obj(*args, **(kwargs or {}))
        elif args or kwargs:
            raise TypeError("args and kwargs are for a class; pass either a class or an instance")
        server = Server(obj, "tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
        made.append(server)
        proxy = Proxy(server.rep_endpoint, timeout=timeout)
        object.__setattr__(proxy, "_proxy_local_server", server)
        made.append(proxy)
        return proxy

    yield serve
    _stop_all(made)


@pytest.fixture
def pizco_serve_process() -> Iterator[Callable[..., Any]]:
    """Factory: ``pizco_serve_process(cls, args=(), kwargs=None, *, timeout=None) -> Proxy``.

    Serves a new ``cls(*args, **kwargs)`` in a child process
    (``Server.serve_in_process``: the class must be importable by its module
    name, its arguments Python literals) and returns a Proxy to it. The server
    and its process are stopped after the test.
    """
    from pizco_qt import Server

    made: List[Any] = []

    def serve(cls: type, args: tuple = (), kwargs: Optional[dict] = None, *, timeout: Optional[float] = None) -> Any:
        proxy = Server.serve_in_process(cls, tuple(args), dict(kwargs or {}), timeout=timeout)
        made.append(proxy)
        return proxy

    yield serve
    _stop_all(made, "pizco_serve_process", lambda proxy: proxy._proxy_stop_server())


def _stop(thing: Any) -> None:
    if hasattr(type(thing), "_proxy_stop_me"):
        thing._proxy_stop_me()
    else:
        thing.stop()


def _stop_all(made: List[Any], fixture: str = "pizco_serve_thread", stop: Callable[[Any], None] = _stop) -> None:
    errors = []
    for thing in reversed(made):
        try:
            stop(thing)
        except Exception as exc:  # stop the others first, then report
            errors.append(exc)
    made.clear()
    if errors:
        raise RuntimeError(f"stopping what {fixture} started failed: {errors!r}")
