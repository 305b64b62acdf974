"""Request dispatch: (served object, action, options) -> reply content.

Pure logic with no sockets or threads: it runs wherever the server decides the
served object may be touched (its worker thread, or a served QObject's own
thread). Replies follow the original protocol: ``('PSMessage', 'return', value)``,
``('PSMessage', 'remote', None)``, ``('PSMessage', 'raise', (exc, tb_lines))``
and ``('PSMessage', 'future_register', msgid)``.

Thread affinity: the thread that may touch the served object.
"""
from __future__ import annotations

import concurrent.futures
import inspect as _inspect
import numbers
import pickle
import traceback
import types
from typing import Any, Dict, Optional, Set, Tuple

from . import gate
from ._qt import QtCore
from .access import is_readonly
from .errors import REASON_ATTR, RemoteError, encode_exception
from .signals import is_signal_like

__all__ = ["dispatch", "default_return_as_remote", "default_force_as_object", "inspect_object",
           "describe_object", "encode_exception"]


_PLAIN = (str, bytes, bytearray, memoryview, tuple, list, set, frozenset, numbers.Number, type(None), bool)
_ROUTINES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType,
             staticmethod, classmethod, types.MethodDescriptorType, types.WrapperDescriptorType,
             types.MethodWrapperType, types.ClassMethodDescriptorType)


def default_return_as_remote(value: Any) -> bool:
    """Callables, signals and objects with ``__get__``, ``__getitem__`` or ``__setitem__`` stay remote."""
    if callable(value) or is_signal_like(value):
        return True
    return any(hasattr(value, name) for name in ("__get__", "__getitem__", "__setitem__"))


_PLAIN_EXACT = frozenset({str, bytes, bytearray, memoryview, tuple, list, set, frozenset, int, float, complex,
                          type(None), bool})


def default_force_as_object(value: Any) -> bool:
    """Plain values (numbers, strings, bytes, tuples, lists, sets, arrays) travel by value."""
    if type(value) in _PLAIN_EXACT:
        return True
    return isinstance(value, _PLAIN) or hasattr(value, "__array_interface__")


def _is_static_signal(static: Any) -> bool:
    return isinstance(static, QtCore.Signal) or is_signal_like(static)


def inspect_object(obj: Any) -> Tuple[Set[str], Set[str]]:
    """``(remote_names, object_names)``: methods and signals are remote; nothing is forced.

    Only class-level and instance-dict entries are examined, so no property runs.
    """
    remote: Set[str] = set()
    if obj is None:
        return remote, set()
    for name in dir(type(obj)):
        if name.startswith("__") and name.endswith("__"):
            continue
        try:
            static = _inspect.getattr_static(obj, name)
        except AttributeError:
            continue
        if isinstance(static, _ROUTINES) or _is_static_signal(static):
            remote.add(name)
    for name, value in getattr(obj, "__dict__", {}).items():
        if name.startswith("__"):
            continue
        if is_signal_like(value):
            remote.add(name)
        elif name in remote:
            remote.discard(name)  # an instance value shadows a class-level routine
    return remote, set()


def describe_object(obj: Any, only: Optional[Any] = None) -> Dict[str, Dict[str, Any]]:
    """Each public name's kind ('attribute', 'method', 'signal'), type name and writability
    (methods also say whether they are marked ``@readonly``).

    ``only`` (the request's ``names`` option) limits it to those names, so a
    client that needs one method's signature does not read every attribute.
    """
    out: Dict[str, Dict[str, Any]] = {}
    if obj is None:
        return out
    names = set(n for n in dir(obj) if not n.startswith("_"))
    if isinstance(only, str):
        only = [only]
    if isinstance(only, (list, tuple, set, frozenset)):
        names &= set(n for n in only if isinstance(n, str))
    for name in sorted(names):
        try:
            static = _inspect.getattr_static(obj, name)
        except AttributeError:
            static = None
        if _is_static_signal(static):
            out[name] = {"kind": "signal", "type": "signal", "writable": False}
            continue
        if isinstance(static, property):
            kind = "attribute"
            writable = static.fset is not None
            readable = static.fget is not None
        else:
            kind, writable, readable = None, True, True
        value: Any = None
        if readable:
            try:
                value = getattr(obj, name)
            except BaseException as exc:  # a failing property is still an attribute
                out[name] = {"kind": "attribute", "type": type(exc).__name__, "writable": writable,
                             "error": str(exc)}
                continue
        if kind is None:
            if is_signal_like(value):
                kind, writable = "signal", False
            elif callable(value):
                kind, writable = "method", False
                try:
                    sig = str(_inspect.signature(value))
                except (TypeError, ValueError):
                    sig = "(...)"
                out[name] = {"kind": kind, "type": type(value).__name__, "writable": False,
                             "signature": sig, "doc": (_inspect.getdoc(value) or "").split("\n")[0],
                             "readonly": is_readonly(obj, name)}
                continue
            else:
                kind = "attribute"
        out[name] = {"kind": kind, "type": type(value).__name__ if readable else "write-only",
                     "writable": writable}
    return out


def _raise_reply(exc: BaseException, serializer: str) -> tuple:
    return ("PSMessage", "raise", encode_exception(exc, serializer))


def import_class(spec: Any) -> Any:
    """The class named by ``spec``: a class itself, ``'module.Class'`` or ``'module:Qual.Name'``.

    Raises
    ------
    TypeError
        If ``spec`` names no module or what it names cannot be called.
    ImportError, AttributeError
        If the module or the name in it does not exist.
    """
    if isinstance(spec, type):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"cannot use {spec!r} as a class: give a class, 'module.Class' or 'module:Class'")
    obj = gate.import_named(spec)
    if not callable(obj):
        raise TypeError(f"{spec} is a {type(obj).__name__}, not a class")
    return obj


def dispatch(server: Any, content: Any, msgid: str, serializer: str = "pickle") -> Any:
    """Answer one Proxy-Server request (``('PSMessage', action, options)``).

    ``server`` provides ``served_object``, ``return_as_remote``, ``force_as_object``,
    ``inspect``, ``register_future(msgid, fut)``, ``cancel_future(msgid)`` and
    ``set_served_object(obj)``.
    """
    try:
        kind, action, options = content
        if kind != "PSMessage":
            raise ValueError
    except (TypeError, ValueError):
        return _raise_reply(ValueError(f"not a PSMessage request: {str(content)[:80]}"), serializer)
    if not isinstance(options, dict):
        options = {}
    obj = server.served_object
    try:
        _check(server, action, options)  # the gate: refuses before anything runs
        if action == "exec":
            attr = getattr(obj, options["name"])
            method = options.get("method", "__call__")
            if method != "__call__" or type(attr) is not types.MethodType:
                attr = getattr(attr, method)  # a bound method is called as its own __call__ would be
            ret = attr(*(options.get("args") or ()), **(options.get("kwargs") or {}))
        elif action == "getattr":
            ret = getattr(obj, options["name"])
        elif action == "setattr":
            setattr(obj, options["name"], options["value"])
            return ("PSMessage", "return", None)
        elif action == "get":
            ret = getattr(obj, options["name"])
            if not (options.get("force_as_object", False) or server.force_as_object(ret)):
                if server.return_as_remote(ret):
                    return ("PSMessage", "remote", None)
        elif action == "inspect":
            remote, plain = server.inspect()
            return ("PSMessage", "return", (set(remote), set(plain)))
        elif action == "instantiate":
            if obj is not None:
                raise RuntimeError(f"this server already serves a {type(obj).__name__}")
            cls = gate.resolve_instantiable(server, options.get("class"))
            new = cls(*(options.get("args") or ()), **(options.get("kwargs") or {}))
            server.set_served_object(new)
            return ("PSMessage", "return", None)
        elif action == "cancel":
            return ("PSMessage", "return", server.cancel_future(options.get("msgid", "")))
        elif action == "describe":
            return ("PSMessage", "return", describe_object(obj, options.get("names")))
        elif action == "getmany":
            return ("PSMessage", "return", _get_many(server, obj, options.get("names", ()), serializer))
        else:
            raise ValueError(f"unknown action {action!r}")
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: answered, the server keeps serving
        return _raise_reply(exc, serializer)
    if isinstance(ret, concurrent.futures.Future):
        server.register_future(msgid, ret)
        return ("PSMessage", "future_register", msgid)
    return ("PSMessage", "return", ret)


def _check(server: Any, action: Any, options: Dict[str, Any]) -> None:
    """The server's gate (``Server.check_request``, which subclasses extend), else ``gate.check_request``."""
    check = getattr(server, "check_request", None)
    if check is not None:
        check(action, options)
    else:
        gate.check_request(server, action, options)


def _get_many(server: Any, obj: Any, names: Any, serializer: str) -> Dict[str, Any]:
    """{name: ('return', value) | ('raise', (exc, tb))} for 'getmany'; each name passes the gate."""
    values: Dict[str, Any] = {}
    for name in names:
        try:
            gate.check_name(server, name)
            values[name] = ("return", getattr(obj, name))
        except BaseException as exc:
            values[str(name)] = ("raise", encode_exception(exc, serializer))
    return values
