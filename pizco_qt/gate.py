"""The request gate: what a peer may ask a server to touch, decided before anything runs.

Every Proxy-Server request passes ``check_request`` before the dispatcher reads,
writes or calls anything; every subscription topic passes ``topic_allowed``
before the server looks the signal up. A refused request is answered with
``errors.refusal(reason, message)`` (a builtin ``PermissionError`` carrying a
fixed reason word) and nothing runs.

Rules (see docs/reliability-and-security.md):

* private names: an attribute name, any component of a dotted name, a method
  called through ``exec`` or a subscription topic starting with ``_`` is
  refused, unless the server was made with ``Server(obj, private=True)``;
  ``exec`` may call an attribute's public names plus ``EXEC_DUNDERS``;
* ``instantiate`` creates only classes, and only those the server's
  ``instantiable`` policy admits (see ``InstantiablePolicy``);
* pizco_qt's reserved topics (``RESERVED_TOPICS``) are not names of the served
  object: they always pass, and unknown ``__x__`` topics are ignored.

Roles and exclusive control depend on who sends a request: the server checks
them first (``access.AccessControl.gate``, with the client's identity), then
``check_request`` applies these rules to every client alike.

Thread affinity: ``check_request`` and ``resolve_instantiable`` run where the
request is dispatched; ``topic_allowed`` on the I/O thread; all are pure
(static attribute lookup only: no property or ``__getattr__`` of the served
object runs).
"""
from __future__ import annotations

import importlib
import inspect as _inspect
import types
from typing import Any, Dict, Iterable, Optional, Set

from . import config
from ._qt import QtCore
from .config import Settings
from .errors import refusal
from .protocol import FUTURE_TOPIC, HEARTBEAT_TOPIC, LOCK_TOPIC
from .signals import is_signal_like

__all__ = ["EXEC_DUNDERS", "RESERVED_TOPICS", "is_private_name", "check_name",
           "check_request", "topic_allowed", "is_static_signal", "InstantiablePolicy", "resolve_instantiable"]

#: Methods ``exec`` may call on a named attribute besides its public names.
EXEC_DUNDERS = frozenset({"__call__", "__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__"})

#: Topics pizco_qt itself publishes on (never names of the served object). Add new ones here.
RESERVED_TOPICS: Set[str] = {HEARTBEAT_TOPIC, FUTURE_TOPIC, LOCK_TOPIC}


def is_private_name(name: str) -> bool:
    """Whether ``name`` or any component of it (``a._b.c``) starts with ``_``."""
    return name[:1] == "_" or "._" in name  # the first component, or any later one


def _allows_private(server: Any) -> bool:
    return bool(getattr(server, "private", False))


def check_name(server: Any, name: Any) -> None:
    """Refuse (PermissionError, reason 'private') a private attribute name; TypeError for a non-string."""
    if not isinstance(name, str):
        raise TypeError(f"an attribute name is a string, not {type(name).__name__}")
    if is_private_name(name) and not _allows_private(server):
        raise refusal("private", f"{name!r} is private: this server serves only public names "
                                 "(names without a leading '_')")


def _check_method(server: Any, name: str, method: Any) -> None:
    if not isinstance(method, str):
        raise TypeError(f"a method name is a string, not {type(method).__name__}")
    if method in EXEC_DUNDERS or _allows_private(server):
        return
    if is_private_name(method):
        raise refusal("private", f"{name}.{method} is private: exec calls an attribute's public methods "
                                 f"and {', '.join(sorted(EXEC_DUNDERS))}")


def check_request(server: Any, action: Any, options: Dict[str, Any]) -> None:
    """Refuse a request that may not run, before anything of it runs.

    Raises the refusal ``PermissionError`` (see ``errors.refusal``), or TypeError/
    KeyError for malformed options; returns None when the request may run.
    ``getmany`` names are checked one by one by the dispatcher (``check_name``).
    """
    if action in ("exec", "getattr", "setattr", "get"):
        name = options["name"]
        check_name(server, name)
        if action == "exec":
            _check_method(server, name, options.get("method", "__call__"))
    elif action == "instantiate":
        policy = getattr(server, "instantiable", None)
        if isinstance(policy, InstantiablePolicy):
            policy.check_spec(options.get("class"), _serializer_of(server))


def _serializer_of(server: Any) -> str:
    protocol = getattr(server, "protocol", None)
    return getattr(protocol, "serializer", "pickle")


# ---------------------------------------------------------------------- subscriptions
def is_static_signal(obj: Any, name: str) -> bool:
    """Whether ``name`` is a signal of ``obj``, found without running any getter.

    A class-level Qt or pizco_qt signal, or a signal-like object in the
    instance's ``__dict__``; properties and ``__getattr__`` never run.
    """
    try:
        static = _inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    except Exception:  # a hostile metaclass: not a signal we can vouch for
        return False
    if isinstance(static, QtCore.Signal):
        return True
    if isinstance(static, (property, staticmethod, classmethod, types.FunctionType, types.BuiltinFunctionType)):
        return False
    try:
        return is_signal_like(static)
    except Exception:
        return False


def topic_allowed(server: Any, topic: str) -> bool:
    """Whether a subscription to ``topic`` is counted and connected (I/O or worker thread).

    Reserved topics pass; other ``__x__`` topics, private topics (unless
    ``private=True``) and topics that are not signals of the served object are
    ignored, and so are topics longer than the server's ``settings.max_topic_bytes``.
    An empty server (nothing served yet) keeps ``settings.max_pending_topics``
    public topics for the object ``instantiate`` will make.
    """
    if topic in RESERVED_TOPICS:
        return True
    settings = _settings_of(server)
    if len(topic.encode("utf-8")) > settings.max_topic_bytes:
        return False
    if topic.startswith("_") and not _allows_private(server):
        return False
    if topic.startswith("__") and topic.endswith("__"):
        return False
    obj = getattr(server, "served_object", None)
    if obj is None:
        publisher = getattr(server, "publisher", None)
        counts = publisher.counts() if publisher is not None else {}
        return topic in counts or len(counts) < settings.max_pending_topics
    return is_static_signal(obj, topic)


def _settings_of(server: Any) -> Settings:
    """The server's Settings (the defaults for an object that has none)."""
    settings = getattr(server, "settings", None)
    return settings if isinstance(settings, Settings) else config.DEFAULTS


# ---------------------------------------------------------------------- instantiate
def _key_of_class(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _key_of_spec(spec: Any) -> Optional[str]:
    """'module.Qual.Name' for a class, 'module:Qual' or 'module.Qual' spec; None otherwise."""
    if isinstance(spec, type):
        return _key_of_class(spec)
    if isinstance(spec, str) and spec:
        return spec.replace(":", ".", 1) if ":" in spec else spec
    return None


class InstantiablePolicy:
    """Which classes a ``Server(None, instantiable=...)`` may be asked to create.

    ``None``: any class for a pickle server (pickle runs code anyway), no class
    for a json server. An iterable of classes or ``'module:Class'`` names (a
    single name or class works too): exactly those. Functions and other
    callables are never admitted.

    Raises
    ------
    TypeError
        For an entry that is neither a class nor a ``'module:Class'`` string.
    """

    def __init__(self, spec: Any = None) -> None:
        self.any = spec is None
        self.entries: Dict[str, Any] = {}
        if spec is None:
            return
        items: Iterable[Any] = (spec,) if isinstance(spec, (str, type)) else spec
        for item in items:
            if isinstance(item, type):
                self.entries[_key_of_class(item)] = item
            elif isinstance(item, str) and "." in item.replace(":", "."):
                self.entries[_key_of_spec(item)] = item  # type: ignore[index]
            else:
                raise TypeError(f"instantiable= takes classes or 'module:Class' names, not {item!r}")

    def __repr__(self) -> str:
        return "InstantiablePolicy(None)" if self.any else f"InstantiablePolicy({sorted(self.entries)!r})"

    def check_spec(self, spec: Any, serializer: str) -> None:
        """Refuse (reason 'instantiate') a spec the policy does not admit; imports nothing."""
        if self.any:
            if serializer == "json":
                raise refusal("instantiate", "this json server creates no objects: make it with "
                                             "Server(None, instantiable=[...]) to admit classes")
            return
        key = _key_of_spec(spec)
        if key is None or key not in self.entries:
            raise refusal("instantiate", f"{spec!r} is not one of the classes this server may create "
                                         f"({', '.join(sorted(self.entries)) or 'none'})")

    def resolve(self, spec: Any) -> Any:
        """The class to create for an admitted ``spec`` (imported from the policy's own entry)."""
        if self.any:
            return _import_spec(spec)
        entry = self.entries[_key_of_spec(spec)]  # type: ignore[index]
        return entry if isinstance(entry, type) else _import_spec(entry)


def _import_spec(spec: Any) -> Any:
    """What ``spec`` names: a class itself, ``'module.Class'`` or ``'module:Qual.Name'``."""
    if isinstance(spec, type):
        return spec
    if not isinstance(spec, str):
        raise refusal("instantiate", f"{spec!r} is a {type(spec).__name__}, not a class: "
                                     "instantiate creates only classes")
    return import_named(spec)


def import_named(spec: str) -> Any:
    """What the string ``spec`` names, ``'module.Name'`` or ``'module:Qual.Name'``, imported.

    Raises
    ------
    TypeError
        If ``spec`` names no module.
    ImportError, AttributeError
        If the module or the name in it does not exist.
    """
    if "." not in spec.replace(":", "."):
        raise TypeError(f"cannot use {spec!r} as a class: give a class, 'module.Class' or 'module:Class'")
    if ":" in spec:
        module_name, qualname = spec.split(":", 1)
    else:
        module_name, qualname = spec.rsplit(".", 1)
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_instantiable(server: Any, spec: Any) -> type:
    """The class ``instantiate`` may create for ``spec``; a refusal for anything but an admitted class."""
    policy = getattr(server, "instantiable", None)
    if not isinstance(policy, InstantiablePolicy):
        policy = InstantiablePolicy(None)
    policy.check_spec(spec, _serializer_of(server))
    obj = policy.resolve(spec)
    if not isinstance(obj, type):
        raise refusal("instantiate", f"{spec!r} is a {type(obj).__name__}, not a class: "
                                     "instantiate creates only classes")
    return obj
