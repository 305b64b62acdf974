"""Reading a reply: from a reply's frames to a value or an exception, in one place.

A reply's content is ``('PSMessage', kind, value)`` with ``kind`` one of
``'return'`` (the value), ``'remote'`` (the value stays on the server),
``'future_register'`` (the value is the message id of a server-side Future whose
outcome comes later on ``__future__``) and ``'raise'`` (the value is
``(exception, traceback lines)``; with json the exception is a dict
``{'__exception__': name, 'args': [...], 'message': ..., 'reason': ...}``).
An original Pizco agent answers a plain request with any content at all.

Three steps, each usable alone:

* ``decode(protocol, frames)``: the content; the signature is checked before
  anything is deserialized. Options: ``serializers`` accepts only some
  serializers (the registry client: json only, so a hostile peer makes nothing
  unpickle), ``tolerant`` rebuilds pickled exceptions whose class is unknown here.
* ``classify(content)``: a ``Reply(kind, value)``; ``strict`` makes a content
  that is no PSMessage a ``ProtocolError`` instead of a ``'plain'`` value.
* ``exception_from_reply(value, endpoint)``: the exception a ``'raise'`` value
  stands for (a refusal becomes ``AccessDenied``/``Locked``, a signature
  rejection ``AuthenticationError``, a server's ``SystemExit`` a ``RemoteError``).

``value(content, endpoint, on_future)`` puts the last two together for the
proxy, and ``read_value(protocol, frames, endpoint, on_future)`` all three: the
common ``'return'`` reply costs one type test and no allocation.

Thread affinity: none (pure functions).
"""
from __future__ import annotations

import builtins
import io
import pickle
from typing import Any, Callable, Collection, Dict, NamedTuple, Optional, Tuple

from .errors import (REASON_ATTR, AuthenticationError, ProtocolError, RemoteError, denied_from,
                     is_signature_rejection, raise_remote)
from .protocol import Protocol

__all__ = ["Reply", "RETURN", "REMOTE", "FUTURE", "RAISE", "PLAIN", "REMOTE_VALUE", "decode", "read_value", "classify",
           "kind_of", "value", "failure", "outcomes", "exception_from_reply", "split_raise", "JsonException", "json_exception",
           "malformed"]

RETURN = "return"
REMOTE = "remote"
FUTURE = "future_register"
RAISE = "raise"
#: The kind of a content that is no PSMessage (lenient reading: an original Pizco agent's answer).
PLAIN = "plain"
#: What ``value`` returns for a ``'remote'`` reply.
REMOTE_VALUE = object()

_KINDS = (RETURN, REMOTE, FUTURE, RAISE)


class Reply(NamedTuple):
    """A reply's kind (``RETURN``, ``REMOTE``, ``FUTURE``, ``RAISE`` or ``PLAIN``) and its value."""

    kind: str
    value: Any


def malformed(endpoint: str, what: Any, peer: str = "Pizco server") -> ProtocolError:
    """The ProtocolError of a reply no ``peer`` would send."""
    return ProtocolError(f"{endpoint} is not a {peer}: it answered {str(what)[:120]}")


# ---------------------------------------------------------------------- decoding
class _TolerantUnpickler(pickle.Unpickler):
    """Rebuilds exceptions whose class is unknown here as RemoteError subclasses."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except Exception:
            qual = f"{module}.{name}"

            def make(*args: Any, **kwargs: Any) -> RemoteError:
                return RemoteError(qual, ", ".join(str(a) for a in args))

            return make


def decode(protocol: Protocol, frames: Any, serializers: Optional[Collection[str]] = None,
           tolerant: bool = False, endpoint: str = "?", peer: str = "Pizco server") -> Any:
    """The content of a reply's frames, the signature checked first.

    ``serializers``: the only serializers accepted (any other is a ProtocolError
    naming ``endpoint``, raised before the payload is looked at). ``tolerant``:
    a pickled payload naming a class unknown here (a server-side exception
    class) is rebuilt with that class as a RemoteError.

    Raises
    ------
    AuthenticationError
        A bad signature.
    ProtocolError
        Wrong frames, a refused serializer, an undecodable payload.
    """
    env = protocol.check(frames)
    if serializers is not None and env.serializer not in serializers:
        raise malformed(endpoint, f"a {env.serializer!r} reply ({peer} replies are {', '.join(serializers)})",
                        peer)
    try:
        return protocol.loads(env.serializer, frames[2], frames[5:])
    except ProtocolError as exc:
        if not tolerant:
            raise
        return _load_tolerantly(env.serializer, frames, exc)


def _load_tolerantly(serializer: str, frames: Any, error: ProtocolError) -> Any:
    """A pickled payload that failed to load, loaded again rebuilding unknown classes; else ``error``."""
    if not serializer.startswith("pickle"):
        raise error
    return _TolerantUnpickler(io.BytesIO(bytes(frames[2]))).load()


def read_value(protocol: Protocol, frames: Any, endpoint: str, on_future: Optional[Callable[[Any], Any]] = None) -> Any:
    """A proxy's reading of a reply's frames: ``value(decode(protocol, frames, tolerant=True), ...)``.

    One call for the common ``'return'`` reply (the synchronous call path).
    """
    env = protocol.check(frames)
    try:
        content = protocol.loads(env.serializer, frames[2], frames[5:])
    except ProtocolError as exc:
        content = _load_tolerantly(env.serializer, frames, exc)
    if type(content) is tuple and len(content) == 3 and content[1] == "return" and content[0] == "PSMessage":
        return content[2]  # the common reply: no other test, nothing allocated
    return value(content, endpoint, on_future)


# ---------------------------------------------------------------------- classifying
def classify(content: Any, endpoint: str = "?", strict: bool = False, peer: str = "Pizco server") -> Reply:
    """The kind and value of a reply's content.

    A content that is no ``('PSMessage', kind, value)`` is ``Reply(PLAIN, content)``,
    or with ``strict`` a ProtocolError. An unknown kind is always a ProtocolError.
    """
    if not (isinstance(content, (tuple, list)) and len(content) == 3 and content[0] == "PSMessage"):
        if strict:
            raise malformed(endpoint, repr(content), peer)
        return Reply(PLAIN, content)
    kind = content[1]
    if kind not in _KINDS:  # compared by ==: a hostile unhashable kind is just unknown
        raise malformed(endpoint, f"a {kind!r} reply", peer)
    return Reply(kind, content[2])


def kind_of(content: Any) -> Optional[str]:
    """The kind of a PSMessage content, else None; nothing allocated (for the answering side's
    bookkeeping of the replies it built itself)."""
    if isinstance(content, tuple) and len(content) == 3 and content[0] == "PSMessage":
        return content[1]
    return None


def value(content: Any, endpoint: str, on_future: Optional[Callable[[Any], Any]] = None) -> Any:
    """What a reply's content stands for (lenient: a plain content is its own value).

    The returned value; ``REMOTE_VALUE`` for ``'remote'``; ``on_future(msgid)``
    for ``'future_register'`` (a ProtocolError without ``on_future``); a
    ``'raise'`` raises its exception with the server's traceback as its cause.
    """
    if type(content) is tuple and len(content) == 3 and content[1] == "return" and content[0] == "PSMessage":
        return content[2]  # the common reply: no other test, nothing allocated
    kind, val = classify(content, endpoint)
    if kind == RAISE:
        raise_remote(*exception_from_reply(val, endpoint))
    if kind == REMOTE:
        return REMOTE_VALUE
    if kind == FUTURE:
        if on_future is None:
            raise malformed(endpoint, f"a {kind!r} reply to a request that cannot have one")
        return on_future(val)
    return val


def failure(content: Any, endpoint: str) -> Optional[BaseException]:
    """The exception of a ``'raise'`` reply (to 'info' or 'stop', say), or None for any other content."""
    kind, val = classify(content, endpoint)
    return exception_from_reply(val, endpoint)[0] if kind == RAISE else None


def outcomes(values: Any, endpoint: str) -> Dict[str, Tuple[str, Any]]:
    """The per-name outcomes of a 'getmany' reply's value: ``{name: ('return', value) | ('raise', exception)}``."""
    return {name: (kind, exception_from_reply(val, endpoint)[0] if kind == RAISE else val)
            for name, (kind, val) in dict(values).items()}


# ---------------------------------------------------------------------- exceptions
def split_raise(value: Any) -> Tuple[Any, Any]:
    """``(exception, traceback lines)`` of a ``'raise'`` value: a pair, else the exception alone."""
    if isinstance(value, (tuple, list)) and value:
        return value[0], (value[1] if len(value) > 1 else [])
    return value, []


class JsonException(NamedTuple):
    """An exception as json carries it."""

    name: str
    args: tuple
    message: str
    #: The refusal reason word (``errors.refusal``), or None.
    reason: Optional[str]


def json_exception(exc: Any) -> Optional[JsonException]:
    """The parts of an exception sent as json, or None if ``exc`` is not one."""
    if not (isinstance(exc, dict) and isinstance(exc.get("__exception__"), str)):
        return None
    args = exc.get("args")
    reason = exc.get("reason")
    return JsonException(exc["__exception__"], tuple(args) if isinstance(args, list) else (),
                         str(exc.get("message", "")), reason if isinstance(reason, str) else None)


def _builtin_exception(name: str) -> Optional[type]:
    candidate = getattr(builtins, name, None)
    if isinstance(candidate, type) and issubclass(candidate, BaseException):
        return candidate
    return None


def _rebuild(parts: JsonException) -> BaseException:
    """The builtin exception json names (with its reason word), else a RemoteError naming it."""
    cls = _builtin_exception(parts.name)
    if cls is not None:
        try:
            exc = cls(*parts.args)
        except Exception:
            pass
        else:
            if parts.reason is not None:
                setattr(exc, REASON_ATTR, parts.reason)
            return exc
    return RemoteError(parts.name, parts.message)


def exception_from_reply(value: Any, endpoint: str) -> Tuple[BaseException, Any]:
    """The exception a ``'raise'`` value stands for, and the server's traceback lines.

    A refusal (a PermissionError with a reason word) becomes ``AccessDenied``
    (``Locked`` for 'locked'), a signature rejection ``AuthenticationError``;
    also used for the per-name outcomes of 'getmany' and for server-side Futures.
    """
    exc, tb = split_raise(value)
    parts = json_exception(exc)
    if parts is not None:
        exc = _rebuild(parts)
    if is_signature_rejection(exc):
        return AuthenticationError(f"{endpoint} rejected the request's signature: the HMAC keys differ "
                                   "(check PZC_KEY or Protocol(hmac_key=...))"), []
    denied = denied_from(exc) if isinstance(exc, PermissionError) else None
    if denied is not None:
        return denied, tb
    if not isinstance(exc, BaseException):
        exc = RemoteError(type(exc).__name__, str(exc), "".join(tb or []))
    elif not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt... of served code: never raised here as such
        exc = _remote_base_exception(exc, tb)
    if isinstance(exc, RemoteError) and not exc.remote_traceback and tb:
        exc.remote_traceback = "".join(tb) if not isinstance(tb, str) else tb
    return exc, tb


def _remote_base_exception(exc: BaseException, tb: Any) -> RemoteError:
    """A RemoteError naming a server-side BaseException (it would end the caller's thread or program)."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    text = tb if isinstance(tb, str) else "".join(str(line) for line in (tb or []))
    return RemoteError(name, str(exc), text)
