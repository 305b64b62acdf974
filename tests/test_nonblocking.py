"""The public non-blocking API: proxy._proxy_get_future, _proxy_set_future, _proxy_get_many_future,
_proxy_describe_future; each returns a concurrent.futures.Future usable from Qt and from asyncio."""
import asyncio
import concurrent.futures

import pytest

from conftest import without_capability
from objects import Stage
from pizco_qt import FutureWatcher, ProxyClosed, Server


class Sensor:
    def __init__(self):
        self.value = 1.5
        self.reads = 0

    @property
    def broken(self):
        raise RuntimeError("sensor unplugged")

    @property
    def counted(self):
        self.reads += 1
        return self.reads


def test_get_and_set_futures_read_and_write_without_waiting(served):
    sensor = Sensor()
    server, proxy = served(sensor)
    fut = proxy._proxy_set_future("value", 7.25)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=5) is None
    assert sensor.value == 7.25
    got = proxy._proxy_get_future("value")
    assert isinstance(got, concurrent.futures.Future)
    assert got.result(timeout=5) == 7.25
    with pytest.raises(RuntimeError, match="sensor unplugged"):
        proxy._proxy_get_future("broken").result(timeout=5)


def test_a_remote_value_is_read_by_value():
    """A dict attribute is a remote object for proxy.settings; the future API gives the dict itself."""
    with Server(Stage()) as server:
        from pizco_qt import Proxy

        with Proxy(server.rep_endpoint, timeout=5) as proxy:
            assert proxy._proxy_get_future("settings").result(timeout=5) == {"units": "mm", "limit": 10}


def test_get_many_future_is_one_request_and_one_failure_does_not_hide_the_others(served):
    sensor = Sensor()
    server, proxy = served(sensor)
    before = server.requests_served
    values = proxy._proxy_get_many_future(["value", "broken", "counted"]).result(timeout=5)
    assert server.requests_served - before == 1
    assert values["value"] == ("return", 1.5)
    assert values["counted"] == ("return", 1)
    kind, exc = values["broken"]
    assert kind == "raise" and isinstance(exc, RuntimeError) and "sensor unplugged" in str(exc)


def test_get_many_future_with_a_server_without_getmany_sends_one_get_per_name(served, monkeypatch):
    without_capability(monkeypatch, "getmany")
    sensor = Sensor()
    server, proxy = served(sensor)
    assert "getmany" not in proxy._proxy_capabilities
    before = server.requests_served
    values = proxy._proxy_get_many_future(["value", "broken"]).result(timeout=5)
    assert server.requests_served - before == 2
    assert values["value"] == ("return", 1.5)
    assert values["broken"][0] == "raise" and isinstance(values["broken"][1], RuntimeError)
    assert proxy._proxy_get_many_future([]).result(timeout=5) == {}


def test_describe_future_matches_describe(served):
    server, proxy = served(Stage())
    assert proxy._proxy_describe_future().result(timeout=5) == proxy._proxy_describe()


def test_futures_of_a_stopped_proxy_fail_with_proxy_closed(served):
    server, proxy = served(Sensor())
    proxy._proxy_stop_me()
    assert proxy._proxy_closed
    for fut in (proxy._proxy_get_future("value"), proxy._proxy_set_future("value", 3),
                proxy._proxy_get_many_future(["value"]), proxy._proxy_describe_future()):
        with pytest.raises(ProxyClosed):
            fut.result(timeout=5)
    assert server.served_object.value == 1.5  # nothing was sent


def test_futures_await_from_asyncio(served):
    sensor = Sensor()
    server, proxy = served(sensor)

    async def main():
        await asyncio.wrap_future(proxy._proxy_set_future("value", 2.0))
        return await asyncio.gather(asyncio.wrap_future(proxy._proxy_get_future("value")),
                                    asyncio.wrap_future(proxy._proxy_get_many_future(["value", "counted"])))

    value, many = asyncio.run(asyncio.wait_for(main(), timeout=5))
    assert value == 2.0 and many == {"value": ("return", 2.0), "counted": ("return", 1)}


def test_futures_reach_a_qt_slot_through_future_watcher(qtbot, served):
    server, proxy = served(Sensor())
    watcher = FutureWatcher(proxy._proxy_get_many_future(["value"]))
    with qtbot.waitSignal(watcher.finished, timeout=5000) as blocker:
        pass
    assert blocker.args == [{"value": ("return", 1.5)}]
