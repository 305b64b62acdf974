"""The package's shape: no import cycle, the client side apart from the server, no reaching
into another object's private attributes."""
from __future__ import annotations

import ast
import pathlib
from typing import Callable, Dict, Iterator, List, Set, Tuple

import pytest

import pizco_qt

PACKAGE = pathlib.Path(pizco_qt.__file__).parent
APPS = PACKAGE.parent / "apps"


def _sources(root: pathlib.Path) -> Iterator[pathlib.Path]:
    yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _parsed(root: pathlib.Path) -> Iterator[Tuple[str, ast.AST]]:
    """``(path relative to root's parent, syntax tree)`` of each source file under ``root``."""
    for path in _sources(root):
        yield path.relative_to(root.parent).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path))


def _assert_none_found(root: pathlib.Path, scan: Callable[[pathlib.Path], List[Tuple[str, int, str]]]) -> None:
    """``scan`` finds nothing under ``root`` (each finding is listed as path:line: text)."""
    if not root.exists():
        pytest.skip(f"{root} is not installed next to the package")
    found = scan(root)
    assert not found, "\n".join(f"{path}:{line}: {text}" for path, line, text in found)


def _sample_package(tmp_path: pathlib.Path, source: str) -> pathlib.Path:
    """A package folder named like ours holding one module with ``source`` (for the scans' self-tests)."""
    fake = tmp_path / "pizco_qt"
    fake.mkdir()
    (fake / "sample.py").write_text(source)
    return fake


# ---------------------------------------------------------------------- imports
def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> Set[int]:
    skipped: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def import_graph() -> Dict[str, Set[str]]:
    """{module: modules of the package it imports}, function-level imports included,
    ``if TYPE_CHECKING:`` imports excepted."""
    paths = {_module_name(p): p for p in _sources(PACKAGE)}
    graph: Dict[str, Set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: Set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = (base + "." + node.module if node.module else base) if node.level else (node.module or "")
                candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found.update(c for c in candidates if c in paths and c != name and c != "pizco_qt")
        graph[name] = found
    return graph


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle, or [] (depth-first search)."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_import_graph_is_built_from_every_module():
    graph = import_graph()
    assert {"pizco_qt.agent", "pizco_qt.proxy", "pizco_qt.server", "pizco_qt.requesting"} <= set(graph)
    assert "pizco_qt.answering" in graph["pizco_qt.agent"]
    assert "pizco_qt.registry_client" in graph["pizco_qt.proxy"]  # a function-level import counts
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_counting_function_level_imports():
    cycle = _cycle(import_graph())
    assert not cycle, " -> ".join(cycle)


CLIENT_SIDE = ["pizco_qt.proxy", "pizco_qt.polling", "pizco_qt.binding", "pizco_qt.requesting",
               "pizco_qt.subscribing", "pizco_qt.heartbeat", "pizco_qt.remote_signals", "pizco_qt.registry_client",
               "pizco_qt.replies", "pizco_qt.locking", "pizco_qt.remote_futures"]


@pytest.mark.parametrize("module", CLIENT_SIDE)
def test_the_client_side_never_imports_the_server(module):
    graph = import_graph()
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(graph.get(current, ()))
    assert "pizco_qt.server" not in seen


# ---------------------------------------------------------------------- private attributes
def _documented_proxy_names() -> Set[str]:
    from pizco_qt.proxy import Proxy

    return {name for name in vars(Proxy) if name.startswith("_proxy_")}


#: Reads of another object's private attributes that stay, each with its reason.
ALLOWED: Set[Tuple[str, str]] = {
    # the standard library offers no public way to tell a thread that threading made up
    ("pizco_qt/delivery.py", "threading._DummyThread"),
    # RemoteAttribute.__eq__ compares with a peer of its own class
    ("pizco_qt/proxy.py", "other._core"),
    ("pizco_qt/proxy.py", "other._name"),
    # a hook a slot's class may define to say which arguments it takes (RemoteAttribute does)
    ("pizco_qt/_qt.py", "type(slot)._pizco_slot_params"),
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_own(node: ast.AST) -> bool:
    """``self``, ``cls`` or ``super()``: the object's own attributes."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def foreign_private_accesses(root: pathlib.Path) -> List[Tuple[str, int, str]]:
    """Each ``other._x`` (read, write or ``getattr(other, "_x")``) in the files under ``root``."""
    documented = _documented_proxy_names()
    found = []
    for rel, tree in _parsed(root):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                target, name = node.value, node.attr
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                target, name = node.args[0], node.args[1].value
            else:
                continue
            if not _private(name) or _is_own(target) or name in documented:
                continue
            text = f"{ast.unparse(target)}.{name}"
            if (rel, text) not in ALLOWED:
                found.append((rel, node.lineno, text))
    return sorted(found)


def test_the_scan_finds_foreign_private_accesses(tmp_path):
    fake = _sample_package(tmp_path, (
        "class A:\n"
        "    def f(self, other, proxy):\n"
        "        self._ok = other._bad + super()._fine + proxy._proxy_endpoint\n"
        "        getattr(other, '_worse')\n"
        "        return proxy._proxy_core\n"))
    found = foreign_private_accesses(fake)
    assert [text for _, _, text in found] == ["other._bad", "other._worse", "proxy._proxy_core"], found


@pytest.mark.parametrize("root", [PACKAGE, APPS], ids=["pizco_qt", "apps"])
def test_no_module_touches_another_objects_private_attributes(root):
    _assert_none_found(root, foreign_private_accesses)


# ---------------------------------------------------------------------- reading a reply
#: Kinds that only a reply has: comparing anything with them is reading a reply.
_ONLY_REPLY_WORDS = {"future_register", "remote"}
#: Words that, compared with their place in a content (``reply[1] == "raise"``), read a reply by hand:
#: the place of each (a slice covers any). A getmany outcome's ``outcome[0] == "raise"`` is not a reply.
_REPLY_WORDS = {"PSMessage": 0, "raise": 1, "return": 1}
#: Hand readings that stay, each with its reason.
HAND_READING_ALLOWED: Set[Tuple[str, str]] = {
    # the encoder looks at what it is about to send (a request or a reply) to pick its fast path
    ("pizco_qt/protocol.py", "content[0] == 'PSMessage'"),
}


def _words(node: ast.AST) -> Set[str]:
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def _reads_place(node: ast.AST, place: int) -> bool:
    """``x[place]``, a slice ``x[i:j]``, or a call over one (``tuple(info[:2])``)."""
    if isinstance(node, ast.Call):
        return any(_reads_place(arg, place) for arg in node.args)
    if not isinstance(node, ast.Subscript):
        return False
    index = node.slice
    return isinstance(index, ast.Slice) or (isinstance(index, ast.Constant) and index.value == place)


def hand_read_replies(root: pathlib.Path) -> List[Tuple[str, int, str]]:
    """Each comparison outside replies.py that reads a reply's shape or kind by hand."""
    found = []
    for rel, tree in _parsed(root):
        if rel == "pizco_qt/replies.py":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left] + node.comparators
            for i, operand in enumerate(operands):
                words = _words(operand)
                others = operands[:i] + operands[i + 1:]
                if words & _ONLY_REPLY_WORDS or any(_reads_place(o, _REPLY_WORDS[w]) for w in words & set(_REPLY_WORDS)
                                                    for o in others):
                    text = ast.unparse(node)
                    if (rel, text) not in HAND_READING_ALLOWED:
                        found.append((rel, node.lineno, text))
                    break
    return sorted(found)


def test_the_reading_scan_finds_hand_readings(tmp_path):
    fake = _sample_package(tmp_path, (
        "def f(reply, kind, info, outcome):\n"
        "    a = reply[1] == 'raise'\n"
        "    b = kind == 'future_register'\n"
        "    c = tuple(info[:2]) == ('PSMessage', 'raise')\n"
        "    d = kind in ('remote', 'other')\n"
        "    e = outcome[0] == 'raise'  # a getmany outcome's kind, not a reply\n"
        "    return reply[0] == 'PSMessage'\n"))
    found = [text for _, _, text in hand_read_replies(fake)]
    assert found == ["reply[1] == 'raise'", "kind == 'future_register'", "tuple(info[:2]) == ('PSMessage', 'raise')",
                     "kind in ('remote', 'other')", "reply[0] == 'PSMessage'"], found


@pytest.mark.parametrize("root", [PACKAGE, APPS], ids=["pizco_qt", "apps"])
def test_only_the_replies_module_reads_a_reply(root):
    """Decoding, classifying and turning a 'raise' into an exception are replies.py's (one helper)."""
    _assert_none_found(root, hand_read_replies)
