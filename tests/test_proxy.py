"""Every operation of the public API through a real Server and Proxy on real sockets."""
from __future__ import annotations

import copy
import pickle
import threading

import pytest

from objects import CustomError, Stage
from pizco_qt import Proxy, Server
from pizco_qt.errors import PizcoError, RemoteError, RemoteTimeout
from pizco_qt.proxy import RemoteAttribute
from test_signals import plain  # connect as a plain script does, whatever tests ran before


def test_attributes_read_and_write(served):
    stage = Stage()
    _, proxy = served(stage)
    assert proxy.speed == 1.5
    assert proxy.name == "stage-1"
    assert proxy.numbers == [1, 2, 3]
    proxy.speed = 3.0
    assert stage.speed == 3.0 and proxy.speed == 3.0
    proxy.new_attribute = "created"
    assert stage.new_attribute == "created"


def test_properties_read_write_read_only_write_only(served):
    stage = Stage()
    _, proxy = served(stage)
    proxy.position = 4
    assert stage.position == 4.0 and proxy.position == 4.0
    assert proxy.read_only == "fixed"
    with pytest.raises(AttributeError):
        proxy.read_only = "changed"
    proxy.secret = "s3"
    assert stage._secret == "s3"
    with pytest.raises(AttributeError):
        proxy.secret


def test_methods_with_args_and_kwargs(served):
    _, proxy = served(Stage())
    assert proxy.move_by(2) == 2.0
    assert proxy.move_by(1, speed=3) == 5.0
    assert proxy.echo(1, "a", x=[1, 2]) == ((1, "a"), {"x": [1, 2]})
    assert proxy.echo() == ((), {})


def test_dict_items(served):
    stage = Stage()
    _, proxy = served(stage)
    assert isinstance(proxy.settings, RemoteAttribute)
    assert proxy.settings["units"] == "mm"
    proxy.settings["units"] = "um"
    assert stage.settings["units"] == "um"
    assert "limit" in proxy.settings
    assert len(proxy.settings) == 2
    assert proxy.settings.get("nothing", 7) == 7
    with pytest.raises(KeyError) as info:
        proxy.settings["missing"]
    assert info.value.args == ("missing",)
    del proxy.settings["limit"]
    assert "limit" not in stage.settings


def test_missing_attribute_is_attribute_error(served):
    _, proxy = served(Stage())
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        proxy.nothing_here
    assert not hasattr(proxy, "nothing_here")
    assert getattr(proxy, "nothing_here", 42) == 42


def test_remote_exception_type_message_and_traceback(served):
    _, proxy = served(Stage())
    with pytest.raises(CustomError, match="exploded") as info:
        proxy.fail("exploded")
    cause = info.value.__cause__
    assert cause is not None and "Server-side traceback" in str(cause)
    assert "in fail" in str(cause) and "raise CustomError(message)" in str(cause)
    assert "raise CustomError(message)" in info.value.remote_traceback
    with pytest.raises(KeyError):
        proxy.fail_key()


def test_unpicklable_exception_arrives_as_remote_error(served):
    _, proxy = served(Stage())
    with pytest.raises(RemoteError) as info:
        proxy.fail_unpicklable()
    assert "Unpicklable" in info.value.type_name
    assert "1/2" in info.value.message
    assert "fail_unpicklable" in info.value.remote_traceback


class _Restricted(Server):
    """A server whose inspect() tells nothing and whose policies are overridden."""

    def inspect(self):
        return set(), set()

    def return_as_remote(self, attr):
        return isinstance(attr, dict) or callable(attr) or hasattr(attr, "connect")

    def force_as_object(self, attr):
        return isinstance(attr, dict) and attr.get("units") == "forced"


def test_server_with_empty_inspect_and_policy_overrides(closing):
    stage = Stage()
    server = closing(_Restricted(stage))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    assert proxy._proxy_core.remote_names == frozenset()
    assert proxy.move_by(1) == 1.0
    assert proxy.position == 1.0
    proxy.position = 3
    assert proxy.settings["units"] == "mm"
    proxy.settings["units"] = "forced"
    assert proxy.settings == {"units": "forced", "limit": 10}  # now forced to travel by value
    got = threading.Event()
    plain(proxy.position_changed.connect, lambda new, old: got.set())
    proxy.position = 8
    assert got.wait(5)


def test_inspect_skips_round_trips_for_methods(served):
    server, proxy = served(Stage())
    before = server.requests_served
    method = proxy.move_by
    assert isinstance(method, RemoteAttribute)
    assert server.requests_served == before  # known from inspect: no 'get'
    method(1)
    assert server.requests_served == before + 1


def test_probe_names_are_answered_locally(served):
    server, proxy = served(Stage())
    before = server.requests_served
    for name in ("_ipython_canary_method_should_not_exist_", "_repr_html_", "_repr_mimebundle_",
                 "_ipython_display_", "__array__", "__array_interface__", "__getstate__", "__length_hint__"):
        with pytest.raises(AttributeError):
            object.__getattribute__(proxy, "__getattr__")(name)
    assert not hasattr(proxy, "_repr_png_")
    with pytest.raises(TypeError, match=server.rep_endpoint):
        pickle.dumps(proxy)
    with pytest.raises(TypeError, match=server.rep_endpoint):
        copy.copy(proxy)
    with pytest.raises(TypeError, match=server.rep_endpoint):
        copy.deepcopy(proxy)
    assert server.requests_served == before
    assert "move_by" in dir(proxy)
    assert server.rep_endpoint in repr(proxy)


def test_empty_server_and_instantiate(closing):
    server = closing(Server(None))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    proxy._proxy_agent.instantiate(Stage, args=(2.0,), kwargs={})
    assert isinstance(server.served_object, Stage)
    assert proxy.position == 2.0
    assert proxy.move_by(1) == 3.0
    with pytest.raises(RuntimeError, match="already serves"):
        proxy._proxy_agent.instantiate("objects.Stage")


def test_instantiate_by_dotted_name(closing):
    server = closing(Server(None))
    proxy = closing(Proxy(server.rep_endpoint, timeout=5))
    proxy._proxy_agent.instantiate("objects.Stage", (5.0,))
    assert proxy.position == 5.0


def test_serve_in_thread_and_stop_server():
    proxy = Server.serve_in_thread(Stage, args=(1.0,))
    server = proxy._proxy_local_server
    assert proxy.position == 1.0
    proxy._proxy_stop_server()
    assert server.stopped
    with pytest.raises(PizcoError):
        proxy.position


def test_serve_forever_returns_after_stop():
    server = Server(Stage())
    finished = threading.Event()
    thread = threading.Thread(target=lambda: (server.serve_forever(), finished.set()))
    thread.start()
    proxy = Proxy(server.rep_endpoint, timeout=5)
    assert proxy.position == 0.0
    proxy._proxy_stop_server()  # 'stop' request
    assert finished.wait(5)
    thread.join(5)
    assert server.stopped


def test_timeout_raises_and_proxy_stays_usable(served):
    stage = Stage()
    _, proxy = served(stage, proxy_timeout=0.3)
    with pytest.raises(RemoteTimeout) as info:
        proxy.blocked()
    assert isinstance(info.value, TimeoutError)
    assert "blocked" not in str(info.value) or "exec" in str(info.value)
    stage.release.set()
    assert proxy.position == 0.0  # the late reply of blocked() is discarded
    assert proxy.move_by(1) == 1.0


def test_timeout_from_environment(monkeypatch, served):
    monkeypatch.setenv("PZC_TIMEOUT", "0.25")
    stage = Stage()
    server = Server(stage)
    proxy = Proxy(server.rep_endpoint)
    try:
        assert proxy._proxy_timeout == 0.25
        with pytest.raises(RemoteTimeout):
            proxy.blocked()
    finally:
        stage.release.set()
        proxy._proxy_stop_me()
        server.stop()


def test_proxy_to_nothing_times_out():
    with pytest.raises(RemoteTimeout):
        Proxy("tcp://127.0.0.1:9", timeout=0.3)


def test_concurrent_calls_from_many_threads(served):
    _, proxy = served(Stage())
    errors, results = [], {}

    def worker(k: int) -> None:
        try:
            results[k] = [proxy.echo(k, i)[0] for i in range(200)]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    for k in range(8):
        assert results[k] == [(k, i) for i in range(200)]


def test_stop_is_prompt_and_idempotent(served):
    server, proxy = served(Stage())
    import time
    t0 = time.monotonic()
    proxy._proxy_stop_me()
    proxy._proxy_stop_me()
    server.stop()
    server.stop()
    assert time.monotonic() - t0 < 2.0


def test_inproc_and_ipc_transports(tmp_path, closing):
    for rep, pub in ((f"inproc://rep-{id(tmp_path)}", f"inproc://pub-{id(tmp_path)}"),
                     (f"ipc://{tmp_path}/rep", f"ipc://{tmp_path}/pub")):
        stage = Stage()
        server = closing(Server(stage, rep, pub))
        assert server.rep_endpoint == rep and server.pub_endpoint == pub
        proxy = closing(Proxy(rep, timeout=5))
        got = threading.Event()
        plain(proxy.position_changed.connect, lambda new, old: got.set())
        assert proxy.move_by(2) == 2.0
        assert got.wait(5)


def test_port_zero_resolved(closing):
    server = closing(Server(Stage()))
    assert server.rep_endpoint.startswith("tcp://127.0.0.1:") and not server.rep_endpoint.endswith(":0")
    assert server.pub_endpoint.startswith("tcp://127.0.0.1:") and not server.pub_endpoint.endswith(":0")


def test_garbage_collected_proxy_closes_itself(closing):
    """A proxy that nothing uses any more closes itself when collected (with a slot
    connected it lives on until the slot is disconnected: see test_compat)."""
    import gc

    from pizco_qt import iothread
    server = closing(Server(Stage()))
    users = iothread._users
    proxy = Proxy(server.rep_endpoint, timeout=5)
    proxy.position_changed.connect(print)
    proxy.position_changed.disconnect(print)
    assert proxy.position == 0.0
    assert iothread._users == users + 1
    del proxy
    gc.collect()
    assert iothread._users == users


def test_unreferenced_server_keeps_serving_until_stopped(closing):
    import gc
    import weakref
    server = Server(Stage())
    ref = weakref.ref(server)
    endpoint = server.rep_endpoint
    del server
    gc.collect()
    assert ref() is not None  # its threads keep it alive: a running server is never lost silently
    proxy = closing(Proxy(endpoint, timeout=5))
    assert proxy.position == 0.0
    ref().stop()
