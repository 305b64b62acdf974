"""Reading a reply (pizco_qt.replies): decoding, the kinds, strict and lenient reading, and the
exception a 'raise' stands for; also the registry's thin layer on top of it."""
from __future__ import annotations

import pytest

from pizco_qt import errors, replies
from pizco_qt.errors import AccessDenied, AuthenticationError, Locked, ProtocolError, RemoteError
from pizco_qt.protocol import Protocol
from pizco_qt.registry_client import _read_reply as read_registry_reply

EP = "tcp://127.0.0.1:5000"


def frames_of(content, serializer="pickle", key=""):
    return Protocol(hmac_key=key, serializer=serializer).encode("tcp://127.0.0.1:5000", "", content, "m1")


class Marks:
    """Unpickling it creates a file: a test asserts that file never appears."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class VanishedError(Exception):
    """Pickled, then renamed in the bytes to a class that exists nowhere here."""


def unknown_class_reply():
    frames = frames_of(("PSMessage", "raise", (VanishedError("it broke"), ["Traceback ...\n"])))
    assert frames[2].count(b"VanishedError") == 1
    frames[2] = frames[2].replace(b"VanishedError", b"VanishedErrxr")  # same length: still a valid pickle
    return frames


# ---------------------------------------------------------------------- decode
@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_decode_checks_the_signature_then_returns_the_content(serializer):
    content = replies.decode(Protocol(hmac_key="k"), frames_of(("PSMessage", "return", [1, 2]), serializer, "k"))
    assert tuple(content[:2]) == ("PSMessage", "return") and list(content[2]) == [1, 2]


def test_a_bad_signature_is_an_authentication_error_and_nothing_is_unpickled(tmp_path):
    marker = tmp_path / "ran"
    frames = frames_of(("PSMessage", "return", Marks(marker)), key="other key")
    with pytest.raises(AuthenticationError):
        replies.decode(Protocol(hmac_key="k"), frames, tolerant=True)
    assert not marker.exists()


@pytest.mark.parametrize("frames", [[b"only", b"three", b"frames"], [b"PZC00+x+", b"json", b"{not json", b"m1", b""]],
                         ids=["frames", "payload"])
def test_malformed_frames_are_protocol_errors(frames):
    with pytest.raises(ProtocolError):
        replies.decode(Protocol(), frames)


def test_a_refused_serializer_is_a_protocol_error_naming_the_peer_before_anything_is_unpickled(tmp_path):
    marker = tmp_path / "ran"
    frames = frames_of(("PSMessage", "return", Marks(marker)))
    with pytest.raises(ProtocolError) as info:
        replies.decode(Protocol(), frames, serializers=("json",), endpoint=EP, peer="pizco_qt registry")
    assert str(info.value) == (f"{EP} is not a pizco_qt registry: it answered a 'pickle' reply "
                               "(pizco_qt registry replies are json)")
    assert not marker.exists()
    assert replies.decode(Protocol(), frames_of(("PSMessage", "return", 1), "json"), serializers=("json",)) \
        == ["PSMessage", "return", 1]


def test_an_exception_of_a_class_unknown_here_is_rebuilt_only_when_tolerant():
    frames = unknown_class_reply()
    with pytest.raises(ProtocolError):
        replies.decode(Protocol(), frames)
    content = replies.decode(Protocol(), frames, tolerant=True)
    with pytest.raises(RemoteError) as info:
        replies.value(content, EP)
    assert info.value.type_name == f"{__name__}.VanishedErrxr"
    assert "it broke" in str(info.value) and info.value.remote_traceback == "Traceback ...\n"
    with pytest.raises(RemoteError, match="VanishedErrxr: it broke"):
        replies.read_value(Protocol(), frames, EP)  # the proxy's reading is tolerant


@pytest.mark.parametrize("serializer", ["pickle", "json", "pickle5oob"])
def test_read_value_decodes_and_reads_every_kind(serializer):
    p = Protocol(hmac_key="k")
    assert replies.read_value(p, frames_of(("PSMessage", "return", "v"), serializer, "k"), EP) == "v"
    assert replies.read_value(p, frames_of(("PSMessage", "remote", None), serializer, "k"), EP) is replies.REMOTE_VALUE
    assert replies.read_value(p, frames_of(("PSMessage", "future_register", "m2"), serializer, "k"), EP,
                              lambda msgid: ("registered", msgid)) == ("registered", "m2")
    assert replies.read_value(p, frames_of({"pub_endpoint": "x"}, serializer, "k"), EP) == {"pub_endpoint": "x"}
    with pytest.raises(Locked):
        raised = errors.encode_exception(errors.refusal("locked", "held"), serializer, [])
        replies.read_value(p, frames_of(("PSMessage", "raise", raised), serializer, "k"), EP)
    with pytest.raises(AuthenticationError):
        replies.read_value(p, frames_of(("PSMessage", "return", "v"), serializer, "other"), EP)


# ---------------------------------------------------------------------- classify and value
@pytest.mark.parametrize("content, kind, value", [
    (("PSMessage", "return", 5), replies.RETURN, 5),
    (["PSMessage", "return", 5], replies.RETURN, 5),  # json gives lists
    (("PSMessage", "remote", None), replies.REMOTE, None),
    (("PSMessage", "future_register", "abc"), replies.FUTURE, "abc"),
    (("PSMessage", "raise", (ValueError("x"), [])), replies.RAISE, None),
])
def test_classify_each_kind(content, kind, value):
    reply = replies.classify(content, EP)
    assert reply.kind == kind and isinstance(reply, tuple)
    if kind != replies.RAISE:
        assert reply.value == value
    with pytest.raises(AttributeError):
        reply.kind = "other"  # immutable


@pytest.mark.parametrize("content", [{"rep_endpoint": EP}, "stopping", None, ("PSMessage", "return"),
                                     ("not", "a", "message")])
def test_lenient_reading_takes_any_other_content_as_a_plain_value_strict_refuses_it(content):
    assert replies.classify(content, EP) == (replies.PLAIN, content)
    assert replies.value(content, EP) is content  # what an original Pizco agent echoes
    assert replies.failure(content, EP) is None
    with pytest.raises(ProtocolError, match="is not a pizco_qt registry: it answered"):
        replies.classify(content, EP, strict=True, peer="pizco_qt registry")


@pytest.mark.parametrize("kind", ["what", ["unhashable"], None])
def test_an_unknown_kind_is_a_protocol_error_even_when_lenient(kind):
    with pytest.raises(ProtocolError, match=f"{EP} is not a Pizco server"):
        replies.classify(("PSMessage", kind, 1), EP)
    with pytest.raises(ProtocolError):
        replies.value(["PSMessage", kind, 1], EP)


def test_value_of_each_kind():
    big = object()
    assert replies.value(("PSMessage", "return", big), EP) is big
    assert replies.value(("PSMessage", "remote", None), EP) is replies.REMOTE_VALUE
    asked = []
    assert replies.value(("PSMessage", "future_register", "m7"), EP, lambda m: asked.append(m) or "fut") == "fut"
    assert asked == ["m7"]
    with pytest.raises(ProtocolError):
        replies.value(("PSMessage", "future_register", "m7"), EP)  # nobody to hand it to
    with pytest.raises(KeyError) as info:
        replies.value(("PSMessage", "raise", (KeyError("k"), ["line 1\n", "line 2\n"])), EP)
    assert "line 2" in str(info.value.__cause__)  # the server's traceback, chained
    assert replies.kind_of(("PSMessage", "raise", None)) == replies.RAISE
    assert replies.kind_of(["PSMessage", "raise", None]) is None and replies.kind_of("info") is None


# ---------------------------------------------------------------------- exceptions
def json_raise(exc):
    return errors.encode_exception(exc, "json", ["tb\n"])


@pytest.mark.parametrize("wire", ["pickle", "json"])
@pytest.mark.parametrize("reason, cls", [("locked", Locked), ("observer", AccessDenied)])
def test_a_refusal_with_its_reason_word_becomes_access_denied_or_locked(wire, reason, cls):
    refusal = errors.refusal(reason, "any wording at all")
    value = json_raise(refusal) if wire == "json" else (refusal, [])
    exc, _ = replies.exception_from_reply(value, EP)
    assert type(exc) is cls and exc.reason == reason and str(exc) == "any wording at all"
    with pytest.raises(cls):
        replies.value(("PSMessage", "raise", value), EP)
    assert type(replies.failure(("PSMessage", "raise", value), EP)) is cls


@pytest.mark.parametrize("wire", ["pickle", "json"])
def test_a_served_codes_own_permission_error_stays_one(wire):
    own = PermissionError("served code said no")
    exc, _ = replies.exception_from_reply(json_raise(own) if wire == "json" else (own, []), EP)
    assert type(exc) is PermissionError and str(exc) == "served code said no"


@pytest.mark.parametrize("wire", ["pickle", "json"])
def test_a_signature_rejection_is_an_authentication_error(wire):
    rejection = errors.signature_rejection("whatever it says")
    exc, _ = replies.exception_from_reply(json_raise(rejection) if wire == "json" else (rejection, []), EP)
    assert isinstance(exc, AuthenticationError) and EP in str(exc)


def test_json_exception_dicts_are_rebuilt_as_builtins_else_remote_errors():
    exc, tb = replies.exception_from_reply(json_raise(ValueError("bad value")), EP)
    assert type(exc) is ValueError and exc.args == ("bad value",) and tb == ["tb\n"]
    exc, _ = replies.exception_from_reply(({"__exception__": "StageJammed", "args": ["x"], "message": "jammed"}, []), EP)
    assert type(exc) is RemoteError and exc.type_name == "StageJammed" and exc.message == "jammed"
    # a builtin that cannot be built from these arguments
    exc, _ = replies.exception_from_reply(({"__exception__": "UnicodeDecodeError", "args": ["a"], "message": "m"}, []), EP)
    assert type(exc) is RemoteError and exc.type_name == "UnicodeDecodeError"
    assert replies.json_exception({"__exception__": 7}) is None  # the name is a string or it is no exception
    assert replies.json_exception({"__exception__": "KeyError", "args": "ab"}).args == ()


def test_a_servers_base_exception_and_a_non_exception_become_remote_errors():
    exc, _ = replies.exception_from_reply((SystemExit(3), ["tb\n"]), EP)
    assert type(exc) is RemoteError and exc.type_name == "SystemExit" and exc.remote_traceback == "tb\n"
    exc, _ = replies.exception_from_reply(("just a string", []), EP)
    assert type(exc) is RemoteError and exc.type_name == "str"


def test_outcomes_of_getmany():
    values = {"a": ("return", 1), "b": ("raise", json_raise(errors.refusal("locked", "held")))}
    out = replies.outcomes(values, EP)
    assert out["a"] == ("return", 1)
    assert out["b"][0] == "raise" and type(out["b"][1]) is Locked


# ---------------------------------------------------------------------- the registry's layer
def registry_frames(content, serializer="json"):
    return frames_of(content, serializer)


@pytest.mark.parametrize("name, args, cls", [
    ("KeyError", ["stage"], KeyError),
    ("PermissionError", ["only its own", "operations"], AccessDenied),
    ("ValueError", ["bad token"], ProtocolError),
    ("TypeError", ["not a dict"], ProtocolError),
    ("AttributeError", ["hostile"], RemoteError),  # never an AttributeError, whatever the peer names
    ("SystemExit", [], RemoteError),
])
def test_the_registry_reads_an_error_by_its_name_only(name, args, cls):
    content = ["PSMessage", "raise", [{"__exception__": name, "args": args}, []]]
    with pytest.raises(Exception) as info:
        read_registry_reply(registry_frames(content), Protocol(), EP)
    assert type(info.value) is cls
    if cls is AccessDenied:
        assert str(info.value) == "only its own operations"
    if cls is ProtocolError:
        assert str(info.value).startswith(f"{EP} refused the request: {name}: ")


@pytest.mark.parametrize("content", [5, ["PSMessage", "remote", None], ["PSMessage", "future_register", "m"],
                                     ["PSMessage", "raise", [{"__exception__": 7}, []]], ["PSMessage", "raise", 5]])
def test_the_registry_reads_strictly(content):
    with pytest.raises(ProtocolError, match=f"{EP} is not a pizco_qt registry"):
        read_registry_reply(registry_frames(content), Protocol(), EP)
    assert read_registry_reply(registry_frames(["PSMessage", "return", {"a": 1}]), Protocol(), EP) == {"a": 1}


def test_the_registry_never_unpickles(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ProtocolError, match="registry replies are json"):
        read_registry_reply(registry_frames(("PSMessage", "return", Marks(marker)), "pickle"), Protocol(), EP)
    assert not marker.exists()
