"""The exception hierarchy of pizco_qt and the chaining of remote tracebacks.

Thread affinity: none (plain data).
"""
from __future__ import annotations

import pickle
import traceback
from typing import Any, NoReturn, Optional, Sequence

__all__ = [
    "PizcoError",
    "RemoteError",
    "RemoteTimeout",
    "ProtocolError",
    "AuthenticationError",
    "ConnectionLost",
    "ProxyClosed",
    "BindError",
    "InsecureBind",
    "NameTaken",
    "AccessDenied",
    "Locked",
    "TooManyOpenFiles",
    "raise_remote",
    "REASON_ATTR",
    "refusal",
    "denied_from",
    "encode_exception",
]


class PizcoError(Exception):
    """Base of every error pizco_qt raises itself."""


class RemoteError(PizcoError):
    """A remote exception that could not be rebuilt locally.

    Attributes
    ----------
    type_name : str
        Qualified name of the exception type raised on the server.
    message : str
        ``str()`` of the original exception.
    remote_traceback : str
        The server-side traceback text.
    """

    def __init__(self, type_name: str = "Exception", message: str = "", remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self):
        return (type(self), (self.type_name, self.message, self.remote_traceback))


class RemoteTimeout(PizcoError, TimeoutError):
    """No reply within the proxy's timeout; the proxy stays usable."""

    def __init__(self, action: str = "request", endpoint: str = "?", timeout: float = 0.0) -> None:
        super().__init__(
            f"{action!r} to {endpoint} got no reply within {timeout:g} s "
            "(is the server running and reachable? raise Proxy(timeout=...) for slow calls)"
        )
        self.action, self.endpoint, self.timeout = action, endpoint, timeout

    def __reduce__(self):
        return (type(self), (self.action, self.endpoint, self.timeout))


class ProtocolError(PizcoError, ValueError):
    """A message broke the wire protocol (frames, header, signature or content).

    Also a ``ValueError``, as the original Pizco's protocol errors were, so
    ``except ValueError`` code written for it keeps working.
    """


class AuthenticationError(ProtocolError):
    """A peer refused our credentials: the HMAC keys differ or a CURVE key was refused."""


class ConnectionLost(PizcoError, ConnectionError):
    """The server is known to be down; the call was not sent."""


class ProxyClosed(PizcoError):
    """The proxy (or agent) was stopped, or was inherited across ``os.fork()``; nothing was sent."""


class BindError(PizcoError, OSError):
    """A server or agent could not bind one of its endpoints (nothing is left bound)."""


class InsecureBind(BindError):
    """Refused before binding: a non-loopback address with no HMAC key and no CURVE."""


class TooManyOpenFiles(PizcoError, OSError):
    """This process is (nearly) out of file descriptors: nothing was opened.

    Raise the limit (``ulimit -n``, or ``resource.setrlimit(RLIMIT_NOFILE, ...)``)
    or use fewer servers and proxies per process.
    """

    def __init__(self, message: str) -> None:
        PizcoError.__init__(self, message)
        self.errno = 24  # EMFILE
        self.strerror = message

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):
        return (type(self), (self.strerror,))


class NameTaken(PizcoError):
    """Another live server is registered under the requested name (nothing is bound)."""


class AccessDenied(PizcoError, PermissionError):
    """The server refused the request and ran nothing.

    On the wire a refusal is a builtin ``PermissionError`` (original Pizco clients
    can read it); a pizco_qt proxy raises it as ``AccessDenied``.
    """


class Locked(AccessDenied):
    """Another client holds exclusive control of the server; the write was refused."""


#: Attribute of a refusal's ``PermissionError`` that says why, as a fixed word
#: ('locked', 'observer', 'private', ...): the pizco_qt side decides on it, never
#: on the message's wording. Original peers just see a ``PermissionError``.
REASON_ATTR = "pizco_reason"


def refusal(reason: str, message: str) -> PermissionError:
    """The builtin ``PermissionError`` a server answers a refused request with."""
    exc = PermissionError(message)
    setattr(exc, REASON_ATTR, reason)
    return exc


#: The reason word of a server's answer to a badly signed request.
SIGNATURE_REASON = "signature"


def signature_rejection(message: str) -> ValueError:
    """The builtin ``ValueError`` a server answers a badly signed request with.

    Original peers read a plain ``ValueError``; it carries the reason word
    ``'signature'`` (pickle and json keep it), which a pizco_qt proxy turns into
    ``AuthenticationError`` whatever the message says.
    """
    exc = ValueError(message)
    setattr(exc, REASON_ATTR, SIGNATURE_REASON)
    return exc


def is_signature_rejection(exc: BaseException) -> bool:
    """Whether ``exc`` is a server's answer to a badly signed request (decided on the reason word)."""
    return isinstance(exc, ValueError) and getattr(exc, REASON_ATTR, None) == SIGNATURE_REASON


def denied_from(exc: BaseException) -> "AccessDenied | None":
    """The ``AccessDenied`` (``Locked`` for reason 'locked') a refusal stands for; None if ``exc`` is none.

    A ``PermissionError`` raised by the served code itself carries no reason and
    stays what it is.
    """
    if isinstance(exc, AccessDenied):
        return exc
    reason = getattr(exc, REASON_ATTR, None)
    if not isinstance(exc, PermissionError) or not isinstance(reason, str):
        return None
    err = (Locked if reason == "locked" else AccessDenied)(str(exc))
    err.reason = reason  # type: ignore[attr-defined]
    return err


class _RemoteTraceback(Exception):
    """Carrier only: prints the server-side traceback as the cause of a remote exception."""

    def __str__(self) -> str:
        return "\n\nServer-side traceback (most recent call last):\n" + str(self.args[0] if self.args else "")


def traceback_text(lines: "Sequence[str] | str | None") -> str:
    """Join a remote traceback given as a list of lines (Pizco's form) or a string."""
    if not lines:
        return ""
    if isinstance(lines, str):
        return lines
    return "".join(str(line) for line in lines)


def raise_remote(exc: BaseException, tb_lines: "Sequence[str] | str | None") -> NoReturn:
    """Raise ``exc`` (rebuilt from a remote reply) with the server traceback chained as its cause."""
    text = traceback_text(tb_lines)
    try:
        exc.remote_traceback = text  # type: ignore[attr-defined]
    except Exception:  # some builtin exceptions refuse new attributes
        pass
    if text:
        raise exc from _RemoteTraceback(text)
    raise exc


# ---------------------------------------------------------------------- exceptions on the wire
def _traceback_lines(exc: BaseException) -> list:
    return [str(line) for line in traceback.format_exception(type(exc), exc, exc.__traceback__)]


def encode_exception(exc: BaseException, serializer: str, tb_lines: Optional[list] = None) -> Any:
    """An exception in a form the requester can rebuild (unpicklable ones become RemoteError)."""
    tb = tb_lines if tb_lines is not None else _traceback_lines(exc)
    if serializer == "json":
        out = {"__exception__": type(exc).__name__, "module": type(exc).__module__,
               "args": [str(a) for a in exc.args], "message": str(exc)}
        reason = getattr(exc, REASON_ATTR, None)
        if isinstance(reason, str):
            out["reason"] = reason
        return out, tb
    try:
        clean = pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
        if type(clean) is not type(exc):
            raise TypeError("type changed in a pickle round trip")
        return clean, tb
    except Exception:
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if type(exc).__module__ == "builtins":
            name = type(exc).__qualname__
        return RemoteError(name, str(exc), "".join(tb)), tb
