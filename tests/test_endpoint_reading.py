"""The one reading of tcp endpoints (pizco_qt.endpoints): every module that looks at a host or a
port goes through these, with one rule for wildcard hosts."""
import pytest

from pizco_qt import endpoints


@pytest.mark.parametrize("endpoint, dialed, expected", [
    ("tcp://*:5556", "tcp://10.0.0.7:5555", "tcp://10.0.0.7:5556"),
    ("tcp://0.0.0.0:5556", None, "tcp://127.0.0.1:5556"),
    ("tcp://[::]:5556", "tcp://*:5555", "tcp://127.0.0.1:5556"),  # a wildcard dialed is no host either
    ("tcp://192.168.1.2:5556", "tcp://10.0.0.7:5555", "tcp://192.168.1.2:5556"),
    ("ipc:///tmp/pub", "tcp://10.0.0.7:5555", "ipc:///tmp/pub"),
])
def test_connectable(endpoint, dialed, expected):
    assert endpoints.connectable(endpoint, dialed) == expected


def test_bind_and_resolve_port_zero():
    assert endpoints.bindable("tcp://127.0.0.1:0") == "tcp://127.0.0.1:*"
    assert endpoints.bindable("tcp://127.0.0.1:5555") == "tcp://127.0.0.1:5555"
    assert endpoints.bindable("inproc://x") == "inproc://x"
    assert endpoints.resolved("tcp://*:0", "tcp://0.0.0.0:41234") == "tcp://*:41234"
    assert endpoints.resolved("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555") == "tcp://127.0.0.1:5555"


def test_hosts_and_ports():
    assert endpoints.split_tcp("tcp://[::1]:5555") == ("[::1]", "5555")
    assert endpoints.split_tcp("ipc:///tmp/x") is None
    assert endpoints.host_of("tcp://[::1]:5555") == "::1"
    assert endpoints.host_of("tcp://eth0;192.168.1.2:5555") == "192.168.1.2"
    assert endpoints.with_port("tcp://10.0.0.7:5555", 0) == "tcp://10.0.0.7:0"
    assert endpoints.with_port("inproc://x", 0) is None
    assert endpoints.fixed_port("tcp://10.0.0.7:5555") and not endpoints.fixed_port("tcp://10.0.0.7:0")
    assert not endpoints.fixed_port("tcp://10.0.0.7:*") and not endpoints.fixed_port("ipc:///tmp/x")
    assert all(endpoints.is_wildcard(h) for h in ("*", "0.0.0.0", "::", "[::]"))
    assert not endpoints.is_wildcard("127.0.0.1")
