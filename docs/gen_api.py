"""Write docs/api.md, the API reference, from the docstrings of the public names.

Run from the repository root: ``python docs/gen_api.py`` (``--check`` only says
whether docs/api.md is up to date). The public surface is ``pizco_qt.__all__``
and the console scripts of pyproject.toml; tests/test_api_doc.py checks that
docs/api.md documents all of it.

Runs on the main thread of its own process.
"""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "api.md")

#: Classes users meet without importing them, documented after the public names.
RELATED = [
    ("pizco_qt.proxy", "RemoteAttribute", "what `proxy.name` returns for a method, signal, dict or other remote object"),
    ("pizco_qt.futures", "RemoteFuture", "the Future of a future-returning method or of `.future(...)`"),
    ("pizco_qt.heartbeat", "ConnectionState", "`proxy._proxy_connection`"),
    ("pizco_qt.binding", "Binding", "what `bind(...)` returns"),
    ("pizco_qt.binding", "Watch", "what `watch(...)` returns"),
    ("pizco_qt.registry", "Registry", "the object a registry serves"),
    ("pizco_qt.registry", "RegistryUnavailable", "raised when no registry answers"),
    ("pizco_qt.security", "CurveConfig", "CURVE encryption and client authentication: `curve=` of Server and Proxy"),
    ("pizco_qt.config", "Settings", "every tunable in one frozen object: `settings=` of Agent, Server and Proxy"),
    ("pizco_qt.process", "ProcessStartError", "raised when `serve_in_process` cannot start its child"),
    ("pizco_qt.apps.monitor", "MonitorWindow", "the window of `pizco-monitor`"),
    ("pizco_qt.apps.status", "StatusWindow", "the window of `gui=True` and `pizco-server -g`"),
    ("pizco_qt.station", "StationFileError", "raised by `Station.from_file` for a bad station file (a ValueError)"),
    ("pizco_qt.apps.station", "StationWindow", "the window of `pizco-station FILE --gui`"),
]
#: The fixtures of the pytest plugin (module, name).
FIXTURES = [
    ("pizco_qt.pytest_plugin", "pizco_serve_thread"),
    ("pizco_qt.pytest_plugin", "pizco_serve_process"),
]
#: Module-level functions users call, documented with their module.
FUNCTIONS = [
    ("pizco_qt.registry", "serve_registry"),
    ("pizco_qt.registry", "registry_proxy"),
    ("pizco_qt.registry", "lookup"),
]
_SIGNAL_LINE = re.compile(r"^\s*#:\s*(.*)\n\s*(\w+)\s*=\s*(?:QtCore\.)?(?:Signal|pyqtSignal)\(", re.M)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if getattr(obj, "__doc__", None) else ""


class _Plain(str):
    """An annotation written as a string, shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _signature(obj: Any, name: str, wrap: int = 0) -> str:
    """``name(params) -> ret`` without private parameters; one parameter per line past ``wrap`` chars."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = []
    for p in sig.parameters.values():
        if p.name.startswith("_") or p.name in ("self", "cls"):
            continue
        if isinstance(p.annotation, str):
            p = p.replace(annotation=_Plain(p.annotation.strip("'\"")))
        params.append(p)
    ret = sig.return_annotation
    if isinstance(ret, str):
        ret = _Plain(ret.strip("'\""))
    if ret in ("None", None) and name[:1].isupper():
        ret = inspect.Signature.empty  # a class: "-> None" of __init__ says nothing
    text = f"{name}{sig.replace(parameters=params, return_annotation=ret)}"
    if wrap and len(text) > wrap and params:
        inner = str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))[1:-1]
        parts = _split_params(inner)
        tail = text[len(name) + len(inner) + 2:]
        text = name + "(\n" + "".join(f"    {part},\n" for part in parts) + ")" + tail
    return text


def _split_params(inner: str) -> List[str]:
    """Split a parameter list at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _qt_signals(cls: type) -> Dict[str, str]:
    """``{name: comment}`` of the Qt signals a class declares with a ``#:`` comment."""
    found: Dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("pizco_qt"):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for comment, name in _SIGNAL_LINE.findall(source):
            found[name] = comment
    return found


def _members(cls: type, private_prefix: Optional[str] = None) -> List[str]:
    """Documented members that ``cls`` defines in pizco_qt (not those of Qt or object)."""
    out: List[str] = []
    seen = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("pizco_qt"):
            continue
        for name, value in vars(klass).items():
            if name in seen:
                continue
            public = not name.startswith("_") or (private_prefix and name.startswith(private_prefix))
            if not public or name.endswith("__"):
                continue
            seen.add(name)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            target = getattr(value, "func", value)  # class-only constructors keep the function in .func
            if isinstance(value, property):
                out.append(f"* `{name}` (property): {_first_line(_doc(value.fget))}")
            elif callable(target):
                out.append(f"* `{_signature(target, name)}`: {_first_line(_doc(target))}")
    return sorted(out, key=lambda line: line.lstrip("* `_"))


def _first_line(text: str) -> str:
    return text.split("\n\n")[0].replace("\n", " ") if text else "(undocumented)"


def _section(qualname: str, obj: Any, note: str = "") -> List[str]:
    lines = [f"## `{qualname}`", ""]
    if note:
        lines += [f"*{note}*", ""]
    if inspect.isclass(obj):
        bases = [b.__name__ for b in obj.__bases__ if b is not object]
        head = _signature(obj, obj.__name__, wrap=88) if not issubclass(obj, BaseException) else obj.__name__
        lines += ["```python", f"class {head}" + (f"  # bases: {', '.join(bases)}" if bases else ""), "```", ""]
        lines += [_doc(obj) or "(undocumented)", ""]
        signals = _qt_signals(obj)
        if signals:
            lines += ["Qt signals:", ""]
            lines += [f"* `{name}`: {text}" for name, text in sorted(signals.items())]
            lines.append("")
        members = [m for m in _members(obj, "_proxy_" if obj.__name__ == "Proxy" else None)
                   if not any(m.startswith(f"* `{s}") for s in signals)]
        if members:
            lines += ["Members:", ""] + members + [""]
    elif callable(obj):
        lines += ["```python", _signature(obj, obj.__name__, wrap=88), "```", "", _doc(obj) or "(undocumented)", ""]
    else:
        lines += ["```python", f"{qualname.split('.')[-1]} = {obj!r}", "```", ""]
    return lines


def _scripts() -> Dict[str, str]:
    """The console scripts of pyproject.toml: ``{name: 'module:function'}``."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"^\[project\.scripts\]\n(.*?)(?:^\[|\Z)", text, re.M | re.S)
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', block.group(1), re.M)) if block else {}


def _help(name: str, target: str) -> Optional[str]:
    module, func = target.split(":")
    code = (f"import sys; sys.argv = [{name!r}, '--help']; from {module} import {func}; "
            f"sys.exit({func}())")
    env = dict(os.environ, COLUMNS="88", QT_QPA_PLATFORM="offscreen")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0 or "usage:" not in proc.stdout:
        return None
    return proc.stdout.rstrip()


def generate() -> str:
    """The text of docs/api.md."""
    sys.path.insert(0, ROOT)
    import importlib

    import pizco_qt

    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/gen_api.py`; the guide",
        "([docs/index.md](index.md)) explains how the pieces fit. The public surface is",
        "what `pizco_qt` exports (`pizco_qt.__all__`) and the console scripts.",
        "",
        "```python",
        "from pizco_qt import " + ", ".join(n for n in pizco_qt.__all__ if not n.startswith("__")),
        "```",
        "",
    ]
    missing = []
    for name in pizco_qt.__all__:
        try:
            obj = getattr(pizco_qt, name)
        except Exception:  # a name announced before its module has landed
            missing.append(name)
            continue
        if name == "__version__":
            lines += [f"## `pizco_qt.__version__`", "", "The version of the installed package, a string.", ""]
            continue
        lines += _section(f"pizco_qt.{name}", obj)
    if missing:
        lines += [f"Not available in this version: {', '.join(f'`{n}`' for n in missing)}.", ""]
    lines += ["# Related classes and functions", ""]
    for module_name, name, note in RELATED:
        try:
            obj = getattr(importlib.import_module(module_name), name)
        except Exception:
            continue
        lines += _section(f"{module_name}.{name}", obj, note)
    for module_name, name in FUNCTIONS:
        try:
            obj = getattr(importlib.import_module(module_name), name)
        except Exception:
            continue
        lines += _section(f"{module_name}.{name}", obj)
    fixtures = []
    for module_name, name in FIXTURES:
        try:
            obj = getattr(importlib.import_module(module_name), name)
        except Exception:
            continue
        func = getattr(obj, "__wrapped__", None) or getattr(obj, "_get_wrapped_function", lambda: obj)()
        fixtures += [f"## `{name}`", "", _doc(func) or _doc(obj) or "(undocumented)", ""]
    if fixtures:
        lines += ["# pytest fixtures", "",
                  "Installing pizco_qt registers a pytest plugin (entry point `pytest11`) with these fixtures.",
                  ""] + fixtures
    lines += ["# Console scripts", ""]
    for script, target in sorted(_scripts().items()):
        text = _help(script, target)
        if text is None:
            continue
        lines += [f"## `{script}`", "", f"Runs `{target}`.", "", "```text", text, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    text = generate()
    if "--check" in sys.argv:
        with open(OUT, encoding="utf-8") as f:
            sys.exit(0 if f.read() == text else 1)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)}")
