"""Who may do what on a server: reads and writes, client identity, roles, exclusive control.

Every request is a *read* or a *write* (``is_write``). A client is an
*observer* (reads only) or a *controller*; one controller at a time may hold
*exclusive control* (the lock), a lease its proxy renews every ``Settings.lock_renew``
seconds and that ends ``Settings.lock_lease`` seconds after the last renewal. While it is
held, every other client's writes are refused with a ``'locked'`` refusal.

pizco_qt proxies identify themselves in the sender field of every request
(``client_sender``): an opaque string to original peers, which never read it.
Requests of any other sender are shown as ``'pizco client'``.

``AccessControl`` is the server's gate for roles and the lock: it answers the
lock requests, refuses what a client may not do (nothing runs then) and logs
every executed write. It runs before ``gate.check_request`` (private names,
instantiate), which applies to every client alike.

Thread affinity: ``AccessControl.gate``/``executed`` run on the server's worker
thread; the lease is also read by the I/O thread (expiry) and the GUI (status).
"""
from __future__ import annotations

import collections
import functools
import getpass
import hashlib
import inspect as _inspect
import itertools
import logging
import os
import socket
import threading
import time
import types
import uuid
from typing import Any, Callable, Deque, Dict, NamedTuple, Optional, Tuple
from urllib.parse import quote, unquote

from . import config, replies
from .config import Settings
from .errors import refusal
from .protocol import LOCK_TOPIC

logger = logging.getLogger(__name__)

__all__ = ["readonly", "is_readonly", "OBSERVER", "CONTROLLER", "LOCK_TOPIC",
           "ORIGINAL_LABEL", "default_label", "client_sender", "Client", "client_from_sender", "is_write",
           "request_name", "Lease", "AccessControl", "WriteRecord"]

OBSERVER = "observer"
CONTROLLER = "controller"
#: How clients that do not identify themselves (original Pizco peers) are shown.
ORIGINAL_LABEL = "pizco client"
#: The attribute ``@readonly`` sets on a function.
READONLY_ATTR = "__pizco_readonly__"

#: Actions that only read.
READ_ACTIONS = frozenset({"get", "getattr", "getmany", "describe", "inspect", "lock_holder"})
#: Methods of a named attribute that only read an item.
READ_METHODS = frozenset({"__getitem__", "__contains__", "__len__"})
#: The actions of exclusive control.
LOCK_ACTIONS = frozenset({"lock", "unlock", "lock_holder"})


# ---------------------------------------------------------------------- @readonly
def readonly(func: Any) -> Any:
    """Mark a method as one that only reads: observers may call it, and so may every client
    while another holds exclusive control.

    Works on plain methods, QObject slots (either order with ``@Slot``),
    methods returning a Future, static and class methods. The method itself is
    returned unchanged (same name, docstring and signature).
    """
    target = func.__func__ if isinstance(func, (staticmethod, classmethod)) else func
    try:
        setattr(target, READONLY_ATTR, True)
    except (AttributeError, TypeError):
        raise TypeError(f"@readonly cannot mark {func!r} (give a function or method)") from None
    return func


def _marked(static: Any) -> bool:
    if isinstance(static, (staticmethod, classmethod)):
        static = static.__func__
    elif isinstance(static, functools.partialmethod):
        static = static.func
    func = getattr(static, "__func__", static)  # a bound method stored on an instance
    try:
        return getattr(func, READONLY_ATTR, False) is True
    except Exception:
        return False


@functools.lru_cache(maxsize=config.DEFAULTS.readonly_cache)
def _class_readonly(cls: type, name: str) -> bool:
    try:
        return _marked(_inspect.getattr_static(cls, name))
    except AttributeError:
        return False


def is_readonly(obj: Any, name: Any) -> bool:
    """Whether ``obj.name`` is a method marked ``@readonly`` (looked up without running anything)."""
    if obj is None or not isinstance(name, str):
        return False
    own = getattr(obj, "__dict__", None)
    if isinstance(own, dict) and name in own:
        return _marked(own[name])
    if isinstance(obj, (type, types.ModuleType)):
        try:
            return _marked(_inspect.getattr_static(obj, name))
        except AttributeError:
            return False
    try:
        return _class_readonly(type(obj), name)
    except TypeError:  # an unhashable class
        return False


# ---------------------------------------------------------------------- client identity
def default_label() -> str:
    """``'<user>@<host>:<pid>'``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "?"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


_SENDER_PREFIX = "urn:pizco_qt:client:"
_clients = itertools.count(1)
_run = uuid.uuid4().hex[:12]


def client_sender(label: str) -> str:
    """The sender string a proxy puts on its requests: a unique id, its host, pid and label.

    Every field is percent-encoded, so no ``+`` or ``:`` of a label can break the header.
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"a client label must be a non-empty string, not {label!r}")
    return (f"{_SENDER_PREFIX}{_run}-{next(_clients)}:{os.getpid()}:"
            f"{quote(socket.gethostname(), safe='')}:{quote(label, safe='')}")


class Client(NamedTuple):
    """Who sent a request."""

    id: str
    label: str
    host: str
    pid: int
    role: str


_known: Dict[Tuple[str, str], Client] = {}


def client_from_sender(sender: str, role: str = CONTROLLER) -> Client:
    """The client a request's sender field names (original peers are ``'pizco client'``)."""
    key = (sender, role)
    client = _known.get(key)
    if client is None:
        if len(_known) >= config.DEFAULTS.client_cache:  # senders come from the network: keep the cache bounded
            _known.clear()
        client = _known[key] = _parse_sender(sender, role)
    return client


def _parse_sender(sender: str, role: str) -> Client:
    if sender.startswith(_SENDER_PREFIX):
        parts = sender[len(_SENDER_PREFIX):].split(":")
        if len(parts) == 4:
            try:
                return Client(sender, unquote(parts[3]), unquote(parts[2]), int(parts[1]), role)
            except ValueError:
                pass
    return Client(sender, ORIGINAL_LABEL, "", 0, role)


# ---------------------------------------------------------------------- reads and writes
def request_name(content: Any) -> Tuple[str, str]:
    """``(action, name)`` of a request, for logs and refusals (never a value)."""
    if isinstance(content, str):
        return content, ""
    if isinstance(content, (tuple, list)) and len(content) == 3:
        options = content[2] if isinstance(content[2], dict) else {}
        action = content[1] if isinstance(content[1], str) else "?"
        name = options.get("name", "")
        if action == "exec" and options.get("method", "__call__") != "__call__":
            return action, f"{name}.{options.get('method')}"
        if action == "instantiate":
            return action, str(options.get("class", ""))
        return action, name if isinstance(name, str) else repr(name)
    return "?", ""


def is_write(obj: Any, content: Any, own_future: Callable[[str], bool] = lambda msgid: False) -> bool:
    """Whether a request writes (see the module docstring and docs/reliability-and-security.md).

    Reads: 'info'; get, getattr, getmany, describe, inspect, lock_holder; an item
    read (``__getitem__``, ``__contains__``, ``__len__``); a call of a method
    marked ``@readonly``; cancelling one's own future. Everything else writes.
    """
    if type(content) is tuple and len(content) == 3 and type(content[2]) is dict:
        action, options = content[1], content[2]  # the common request, checked once
    elif isinstance(content, str):
        return content == "stop"
    elif not (isinstance(content, (tuple, list)) and len(content) == 3):
        return False  # not a request: dispatch refuses it without running anything
    else:
        action, options = content[1], content[2]
        if not isinstance(options, dict):
            options = {}
    if action in READ_ACTIONS:
        return False
    if action == "exec":
        method = options.get("method", "__call__")
        if method in READ_METHODS:
            return False
        return not (method == "__call__" and is_readonly(obj, options.get("name")))
    if action == "cancel":
        return not own_future(str(options.get("msgid", "")))
    return True


# ---------------------------------------------------------------------- the lease
class Lease:
    """Exclusive control of one server: who holds it and until when (thread-safe)."""

    def __init__(self, duration: Optional[float] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.duration = config.DEFAULTS.lock_lease if duration is None else duration
        self._clock = clock
        self._lock = threading.Lock()
        self._holder: Optional[Client] = None
        self._since = 0.0
        self._deadline = 0.0

    def holder(self) -> Optional[Client]:
        """The client holding it now (an expired lease is ended here)."""
        if self._holder is None:  # the common case, without taking the lock
            return None
        with self._lock:
            self._expire()
            return self._holder

    def info(self) -> Optional[Dict[str, Any]]:
        """The holder as the wire shows it: label, host, pid, since (epoch seconds), id; or None."""
        with self._lock:
            self._expire()
            return self._describe()

    def _describe(self) -> Optional[Dict[str, Any]]:
        h = self._holder
        if h is None:
            return None
        return {"label": h.label, "host": h.host, "pid": h.pid, "since": self._since, "id": holder_id(h.id)}

    def _expire(self) -> bool:
        if self._holder is not None and self._clock() > self._deadline:
            logger.info("exclusive control of %s expired (no renewal for %g s)", self._holder.label, self.duration)
            self._holder = None
            return True
        return False

    def expire(self) -> bool:
        """End the lease if it ran out; whether it did."""
        with self._lock:
            return self._expire()

    def acquire(self, client: Client) -> Tuple[bool, Optional[Dict[str, Any]], bool]:
        """Take it (or renew it, for its holder): ``(granted, holder info, changed)``."""
        with self._lock:
            self._expire()
            if self._holder is not None and self._holder.id != client.id:
                return False, self._describe(), False
            changed = self._holder is None
            if changed:
                self._holder = client
                self._since = time.time()
            self._deadline = self._clock() + self.duration
            return True, self._describe(), changed

    def release(self, client: Client) -> bool:
        """Give it up; False if ``client`` did not hold it."""
        with self._lock:
            self._expire()
            if self._holder is None or self._holder.id != client.id:
                return False
            self._holder = None
            return True

    def touch(self, client_id: str) -> None:
        """Any request of the holder renews its lease."""
        holder = self._holder
        if holder is None or holder.id != client_id:
            return
        with self._lock:
            if self._holder is not None and self._holder.id == client_id and self._clock() <= self._deadline:
                self._deadline = self._clock() + self.duration

    def credit(self, seconds: float) -> None:
        """Time the server spent busy does not count: renewals waited in its queue meanwhile."""
        with self._lock:
            if self._holder is not None:
                self._deadline += seconds


def holder_id(client_id: str) -> str:
    """A short opaque id of a client, so a proxy can tell whether a holder is itself."""
    return hashlib.sha1(client_id.encode("utf-8", "replace")).hexdigest()[:16]


# ---------------------------------------------------------------------- the gate
class WriteRecord(NamedTuple):
    """One executed write: when, by whom, what (never the value)."""

    time: float
    label: str
    action: str
    name: str


class AccessControl:
    """A server's access rules: roles, the lock, the write log.

    ``publish(holder_or_None)`` is called after every change of the lock holder.
    """

    def __init__(self, publish: Callable[[Optional[Dict[str, Any]]], None],
                 settings: Optional[Settings] = None) -> None:
        settings = settings if settings is not None else config.DEFAULTS
        self.lease = Lease(settings.lock_lease)
        self._publish = publish
        #: The last executed writes (``settings.write_log`` of them).
        self.writes: Deque[WriteRecord] = collections.deque(maxlen=settings.write_log)
        #: The level executed writes are logged at (INFO; the registry, whose servers
        #: re-register every 2 s, logs them at DEBUG).
        self.write_log_level = logging.INFO
        self._future_owners: Dict[str, str] = {}
        self._max_owners = settings.max_future_owners

    def holder(self) -> Optional[Dict[str, Any]]:
        """The current holder (label, host, pid, since, id), or None."""
        return self.lease.info()

    def expire(self) -> None:
        """End an expired lease and publish it (any thread)."""
        if self.lease.expire():
            self._publish(None)

    def gate(self, obj: Any, client: Client, content: Any, serializer: str) -> Tuple[Any, bool]:
        """``(reply, write)``: the reply to a request answered here (a refusal, or a lock
        request), or None to run it; and whether the request writes."""
        self.lease.touch(client.id)
        action = content[1] if isinstance(content, (tuple, list)) and len(content) == 3 else None
        if action == "cancel":
            write = is_write(obj, content, lambda msgid: self._future_owners.get(msgid) == client.id)
        else:
            write = action in ("lock", "unlock") or is_write(obj, content)
        if write and client.role == OBSERVER:
            what = " ".join(request_name(content)).strip()
            return self._refuse(client, content, serializer, "observer",
                                f"{client.label} is an observer of this server: observers may read "
                                f"but not write ({what} refused)"), write
        if action in LOCK_ACTIONS:
            if action == "lock_holder":
                return ("PSMessage", "return", self.lease.info()), False
            if action == "unlock":
                return ("PSMessage", "return", self._release(client)), False
            options = content[2] if isinstance(content[2], dict) else {}
            if options.get("renew"):  # a renewal never takes a lock that ended
                holder = self.lease.holder()
                return ("PSMessage", "return", self.lease.info() if holder and holder.id == client.id
                        else None), False
            granted, info, changed = self.lease.acquire(client)
            if not granted:
                return self._refuse(client, content, serializer, "locked", _held_message(info)), False
            if changed:
                logger.info("%s took exclusive control", client.label)
                self._publish(info)
            return ("PSMessage", "return", info), False
        if write:
            holder = self.lease.holder()
            if holder is not None and holder.id != client.id:
                return self._refuse(client, content, serializer, "locked", _held_message(self.lease.info())), write
        return None, write

    @staticmethod
    def _refuse(client: Client, content: Any, serializer: str, reason: str, message: str) -> Any:
        from .errors import encode_exception

        action, name = request_name(content)
        logger.warning("refused %s %s of %s: %s", action, name, client.label, reason)
        return ("PSMessage", "raise", encode_exception(refusal(reason, message), serializer))

    def _release(self, client: Client) -> bool:
        released = self.lease.release(client)
        if released:
            logger.info("%s released exclusive control", client.label)
            self._publish(None)
        return released

    def release_client(self, client_id: str) -> None:
        """End the lock of a client known to be gone."""
        holder = self.lease.holder()
        if holder is not None and holder.id == client_id:
            self._release(holder)

    def executed(self, client: Client, content: Any, reply: Any, write: bool) -> None:
        """Log a write that ran, and remember who owns a future it registered."""
        if replies.kind_of(reply) == replies.FUTURE:
            owners = self._future_owners
            if len(owners) > self._max_owners:
                owners.clear()
            owners[str(reply[2])] = client.id
        if not write:
            return
        action, name = request_name(content)
        self.writes.append(tuple.__new__(WriteRecord, (time.time(), client.label, action, name)))  # no keyword parsing
        if logger.isEnabledFor(self.write_log_level):
            logger.log(self.write_log_level, "write by %s: %s %s", client.label, action, name)


def _held_message(info: Optional[Dict[str, Any]]) -> str:
    info = info or {}
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return (f"{info.get('label', 'another client')} holds exclusive control of this server "
            f"(since {since}); writes of other clients are refused")
