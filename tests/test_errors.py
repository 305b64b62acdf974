"""The error hierarchy: every class under PizcoError, the builtin it resembles, and refusals on the wire."""
from __future__ import annotations

import pytest

import pizco_qt
from pizco_qt import errors
from pizco_qt.protocol import Protocol

HIERARCHY = [
    # class, the builtins it must also be, typical arguments
    (errors.RemoteError, (), ("KeyError", "'x'", "Traceback ...")),
    (errors.RemoteTimeout, (TimeoutError,), ("exec", "tcp://127.0.0.1:5000", 2.5)),
    (errors.ProtocolError, (ValueError,), ("expected 5 frames, got 3",)),
    (errors.AuthenticationError, (ValueError,), ("tcp://127.0.0.1:5000 refused our HMAC key",)),
    (errors.ConnectionLost, (ConnectionError,), ("the server at tcp://127.0.0.1:5000 is down",)),
    (errors.ProxyClosed, (), ("this proxy to tcp://127.0.0.1:5000 is stopped",)),
    (errors.BindError, (OSError,), ("cannot bind tcp://127.0.0.1:5000: address in use",)),
    (errors.InsecureBind, (OSError,), ("refusing to bind tcp://0.0.0.0:5000 with no key",)),
    (errors.NameTaken, (), ("the name 'stage' is used by a live server",)),
    (errors.AccessDenied, (PermissionError,), ("observers may not write",)),
    (errors.Locked, (PermissionError,), ("locked by alice@lab:42",)),
]


@pytest.mark.parametrize("cls, builtins, args", HIERARCHY, ids=[c.__name__ for c, _, _ in HIERARCHY])
def test_each_error_is_a_pizco_error_and_reads_correctly(cls, builtins, args):
    assert getattr(pizco_qt, cls.__name__) is cls, "exported from pizco_qt"
    exc = cls(*args)
    assert isinstance(exc, pizco_qt.PizcoError)
    for builtin in builtins:
        assert isinstance(exc, builtin)
    text = str(exc)
    assert text and "(" not in text[:1] and "Errno" not in text
    for arg in args[:2]:
        assert str(arg) in text, (cls, text)


def test_specific_subclasses():
    assert issubclass(errors.InsecureBind, errors.BindError)
    assert issubclass(errors.Locked, errors.AccessDenied)
    assert issubclass(errors.AuthenticationError, errors.ProtocolError)


def test_refusal_becomes_access_denied_only_with_a_reason():
    denied = errors.denied_from(errors.refusal("observer", "observers may not write"))
    assert type(denied) is errors.AccessDenied and str(denied) == "observers may not write"
    assert denied.reason == "observer"
    assert type(errors.denied_from(errors.refusal("locked", "locked by bob"))) is errors.Locked
    assert errors.denied_from(PermissionError("the served code's own error")) is None
    assert errors.denied_from(ValueError("x")) is None


class Guarded:
    def refuse(self, reason):
        raise errors.refusal(reason, f"refused: {reason}")

    def own_permission_error(self):
        raise PermissionError("cannot open /dev/ttyUSB0")


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_refusal_on_the_wire(served, serializer):
    protocol = Protocol(serializer=serializer)
    _, proxy = served(Guarded(), protocol=protocol)
    with pytest.raises(errors.Locked, match="refused: locked"):
        proxy.refuse("locked")
    with pytest.raises(errors.AccessDenied, match="refused: private") as info:
        proxy.refuse("private")
    assert not isinstance(info.value, errors.Locked)
    with pytest.raises(PermissionError) as info:
        proxy.own_permission_error()
    assert not isinstance(info.value, errors.AccessDenied)
