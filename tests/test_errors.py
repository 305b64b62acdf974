"""The error hierarchy: every class under PizcoError, the builtin it resembles, and refusals on the wire."""
from __future__ import annotations

import pickle

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
    (errors.TooManyOpenFiles, (OSError,), ("1020 of 1024 file descriptors are open",)),
]


def test_every_error_class_is_in_the_table():
    classes = {obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, errors.PizcoError)}
    assert classes - {errors.PizcoError} == {cls for cls, _, _ in HIERARCHY}


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


def test_every_error_reads_correctly_with_default_and_typical_arguments():
    assert str(errors.PizcoError("something failed")) == "something failed"
    assert str(errors.RemoteError()) == "Exception"
    assert str(errors.RemoteError("KeyError", "'x'")) == "KeyError: 'x'"
    timeout = errors.RemoteTimeout("getmany", "tcp://127.0.0.1:5000", 1.0)
    assert str(timeout).startswith("'getmany' to tcp://127.0.0.1:5000 got no reply within 1 s")
    assert str(errors.RemoteTimeout()).startswith("'request' to ? got no reply within 0 s")
    for cls, _, args in HIERARCHY:
        exc = cls(*args)
        again = pickle.loads(pickle.dumps(exc))  # errors cross process boundaries (served code, futures)
        assert type(again) is cls and str(again) == str(exc)


def test_a_signature_rejection_is_recognised_by_its_reason_word_not_its_wording():
    from pizco_qt.replies import exception_from_reply

    reworded = errors.signature_rejection("the signature did not match (any wording)")
    assert type(reworded) is ValueError  # a builtin on the wire, for original peers
    exc, _ = exception_from_reply((reworded, []), "tcp://127.0.0.1:5000")
    assert isinstance(exc, errors.AuthenticationError) and "tcp://127.0.0.1:5000" in str(exc)
    # the served code's own ValueError is never taken for one, whatever it says
    own, _ = exception_from_reply((ValueError("bad signature: check PZC_KEY"), []), "tcp://127.0.0.1:5000")
    assert type(own) is ValueError


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_an_unsigned_client_of_a_keyed_server_gets_authentication_error(closing, serializer):
    from pizco_qt import Proxy, Server

    served = Guarded()
    server = closing(Server(served, protocol=Protocol(hmac_key="right", serializer=serializer)))
    with pytest.raises(errors.AuthenticationError, match="signature"):
        Proxy(server.rep_endpoint, timeout=5, protocol=Protocol(serializer=serializer))
    with Proxy(server.rep_endpoint, timeout=5, protocol=Protocol(hmac_key="right", serializer=serializer)) as proxy:
        with pytest.raises(errors.Locked):  # the server keeps serving correctly signed requests
            proxy.refuse("locked")


def test_typed_errors_at_their_raise_sites(closing, served, reg_server):
    from pizco_qt import Proxy, Server

    server = closing(Server(Guarded(), name="guarded"))
    with pytest.raises(errors.NameTaken, match="'guarded' is already used"):
        Server(Guarded(), name="guarded")
    with pytest.raises(errors.BindError, match="cannot bind"):
        Server(Guarded(), rep_endpoint=server.rep_endpoint)
    with pytest.raises(errors.InsecureBind):
        Server(Guarded(), rep_endpoint="tcp://0.0.0.0:0")
    _, proxy = served(Guarded())
    proxy._proxy_stop_me()
    with pytest.raises(errors.ProxyClosed, match="stopped"):
        proxy.refuse("locked")
