"""One Settings object: read from the environment once, frozen, passed explicitly to every part."""
import dataclasses

import pytest

from objects import Stage
from pizco_qt import Agent, Proxy, Server, config
from pizco_qt.config import Settings


def test_from_environment_reads_each_variable_and_keeps_the_other_defaults():
    env = {"PZC_KEY": "k", "PZC_SER": "json", "PZC_TIMEOUT": "0.5", "PZC_HEARTBEAT": "0.2",
           "PZC_REGISTRY": "tcp://10.0.0.1:6000", "PZC_MAX_MESSAGE": "1024", "PZC_SNDHWM": "7",
           "PZC_RCVHWM": "8", "PZC_STATION": "lab"}
    s = Settings.from_environment(env)
    assert (s.hmac_key, s.serializer, s.timeout, s.heartbeat, s.registry, s.max_message, s.send_hwm,
            s.receive_hwm, s.station) == ("k", "json", 0.5, 0.2, "tcp://10.0.0.1:6000", 1024, 7, 8, "lab")
    assert s.hwm == Settings().hwm and s.registry_refresh == Settings().registry_refresh
    assert Settings.from_environment({}) == Settings()
    assert "hmac_key" not in repr(s) and "'k'" not in repr(s)  # a key never lands in a log
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.timeout = 3  # type: ignore[misc]


@pytest.mark.parametrize("variable, value, words", [
    ("PZC_TIMEOUT", "soon", "number of seconds"), ("PZC_HEARTBEAT", "-1", "must be positive"),
    ("PZC_SNDHWM", "lots", "whole number"), ("PZC_RCVHWM", "0", "must be positive"),
])
def test_a_bad_variable_is_named(variable, value, words):
    with pytest.raises(ValueError, match=f"{variable}=.*{words}"):
        Settings.from_environment({variable: value})


def test_the_getters_read_through_settings(monkeypatch):
    monkeypatch.setenv("PZC_TIMEOUT", "0.75")
    monkeypatch.setenv("PZC_REGISTRY", "tcp://127.0.0.1:5999")
    assert config.timeout() == Settings.from_environment().timeout == 0.75
    assert config.registry_endpoint() == "tcp://127.0.0.1:5999"
    assert config.heartbeat() == Settings().heartbeat


def test_an_agent_hands_one_settings_object_to_its_parts(closing):
    settings = dataclasses.replace(Settings.from_environment(), heartbeat=0.25)
    agent = closing(Agent(settings=settings))
    assert agent.settings is settings
    for part in (agent.requester, agent.subscriber, agent.answerer, agent.publisher):
        assert part.settings is settings
    assert agent.request(agent.rep_endpoint, "info")["heartbeat"] == 0.25


def test_servers_and_proxies_take_settings_explicitly_and_arguments_win(closing, monkeypatch):
    monkeypatch.setenv("PZC_TIMEOUT", "7")
    server = closing(Server(Stage(), settings=dataclasses.replace(Settings(), heartbeat=0.3)))
    proxy = closing(Proxy(server.rep_endpoint, settings=dataclasses.replace(Settings(), timeout=2.5)))
    assert proxy._proxy_timeout == 2.5  # the settings given, not PZC_TIMEOUT
    assert proxy._proxy_core.period == 0.3  # the server's heartbeat, from its settings
    assert closing(Proxy(server.rep_endpoint))._proxy_timeout == 7.0  # read from the environment
    assert closing(Proxy(server.rep_endpoint, timeout=1.5, settings=Settings()))._proxy_timeout == 1.5


def test_every_field_has_a_default_and_a_comment_saying_what_it_is():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(config))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    lines = inspect.getsource(config).splitlines()
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert len(fields) >= 30
    for field in dataclasses.fields(Settings):
        assert field.default is not dataclasses.MISSING, field.name
    for node in cls.body:
        if isinstance(node, ast.AnnAssign):
            above = lines[node.lineno - 2].strip()
            assert above.startswith("#:"), f"Settings.{node.target.id} has no '#:' comment"


def test_no_module_keeps_its_own_copy_of_a_limit():
    from pizco_qt import access, delivery, gate, polling, process

    for module, name in [(access, "LEASE"), (access, "RENEW"), (gate, "MAX_TOPIC_BYTES"), (gate, "MAX_PENDING_TOPICS"),
                         (delivery, "TURN_BUDGET"),
                         (polling, "_SLACK"), (process, "STDERR_TAIL")]:
        assert not hasattr(module, name), f"{module.__name__}.{name} duplicates a Settings field"


def test_the_topic_length_limit_is_the_servers_setting(closing):
    from pizco_qt import gate

    topic = "position_changed"  # 16 bytes, a signal of Stage
    default = closing(Server(Stage()))
    short = closing(Server(Stage(), settings=dataclasses.replace(Settings(), max_topic_bytes=8)))
    assert gate.topic_allowed(default, topic)
    assert not gate.topic_allowed(short, topic)
    assert gate.topic_allowed(short, "moved")


def test_the_stderr_tail_and_recent_errors_follow_the_settings_given(closing):
    import os
    import sys

    from pizco_qt.process import ChildProcess

    script = "import sys\nfor i in range(50): print('line', i, file=sys.stderr)\n"

    def tail(settings):
        child = ChildProcess([sys.executable, "-c", script], dict(os.environ), "tail", settings=settings)
        try:
            child.popen.wait(10)
            child.wait_stderr(10)
            return child.stderr_tail().splitlines()
        finally:
            child.stop(2.0)

    assert tail(dataclasses.replace(Settings(), stderr_tail=3)) == ["line 47", "line 48", "line 49"]
    assert len(tail(Settings())) == Settings().stderr_tail == 40
    server = closing(Server(Stage(), settings=dataclasses.replace(Settings(), recent_errors=2)))
    assert server.recent_errors.maxlen == 2


def test_the_lock_lease_and_the_write_log_follow_the_servers_settings(closing):
    settings = dataclasses.replace(Settings(), lock_lease=7.5, write_log=2)
    server = closing(Server(Stage(), settings=settings))
    assert server.access.lease.duration == 7.5 and server.access.writes.maxlen == 2
    default = closing(Server(Stage()))
    assert default.access.lease.duration == Settings().lock_lease == 3.0
    assert default.access.writes.maxlen == Settings().write_log == 100


# ---------------------------------------------------------------------------- no number outside Settings
#: Numbers that are facts of a format or of the language, not settings: (module, value, why).
FORMAT_NUMBERS = {
    ("protocol", 5): "pickle protocol 5 (out-of-band buffers) and the five frames of a message",
    ("protocol", 0xFF): "a compact frame's one-byte lengths",
    ("protocol", 0xFFFF): "a compact frame's two-byte header length",
    ("endpoints", 65535): "the largest TCP port",
    ("errors", 24): "EMFILE, the errno of TooManyOpenFiles",
    ("signals", 3): "Pizco pads a slot's arguments to three values",
    ("access", 3): "a PSMessage is a triple",
    ("registry_client", 9): "the discard port a UDP probe 'connects' to (nothing is sent) to learn the local address",
    ("cli", 130): "the exit status of a program stopped by Ctrl+C (128 + SIGINT)",
    ("zmq_io", 5): "the five frames of a message",
    ("zmq_io", 6): "the delimiter and the five frames of a request or reply",
    ("zmq_io", 7): "a ROUTER's routing id, the delimiter and the five frames",
    ("requesting", 6): "the delimiter and the five frames of a reply",
    ("subscribing", 5): "the five frames of a notification",
    ("security", 32): "a raw CURVE key's bytes (40 in z85)",
    ("registry_client", 32): "a raw CURVE key's bytes",
    ("registry_client", 40): "a z85 CURVE key's characters",
}


def _numbers_outside_settings():
    """(module, line, value, source line) of each number literal that is not a format fact."""
    import ast
    import pathlib

    import pizco_qt

    package = pathlib.Path(pizco_qt.__file__).parent
    found = []
    for path in sorted(package.glob("*.py")):
        module = path.stem
        if module == "config":
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = text.splitlines()
        allowed = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Subscript, ast.Slice)):  # frame indices and truncated texts
                allowed.update(id(n) for n in ast.walk(node.slice if isinstance(node, ast.Subscript) else node))
            elif isinstance(node, ast.Compare) and any("version_info" in ast.unparse(n)
                                                       for n in [node.left, *node.comparators]):
                allowed.update(id(n) for n in ast.walk(node))  # Python versions
            elif isinstance(node, ast.Compare) and any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "len"
                                                       for n in [node.left, *node.comparators]):
                allowed.update(id(n) for n in ast.walk(node)  # counts of frames and fields, not bounds
                               if isinstance(n, ast.Constant) and type(n.value) is int and n.value <= 8)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv)):
                allowed.update(id(n) for n in (node.left, node.right)  # units: ms, KiB, doubling, halves
                               if isinstance(n, ast.Constant) and n.value in (2, 1000, 1024))
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("recv", "read"):
                allowed.update(id(n) for n in node.args)  # the chunk size of draining a wake-up pipe
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and type(node.value) in (int, float)) or id(node) in allowed:
                continue
            if type(node.value) is int and node.value in (0, 1, -1, 2) or node.value == 0.0:
                continue  # none, one, first, last, pairs, doubling
            if (module, node.value) in FORMAT_NUMBERS:
                continue
            found.append(f"{module}.py:{node.lineno}: {node.value!r}: {lines[node.lineno - 1].strip()}")
    return found


def test_no_tunable_number_is_written_outside_settings():
    """Every timeout, period, wait, bound and cache size of the package is a field of Settings;
    what remains are format facts (listed above with their reason), indices and units."""
    found = _numbers_outside_settings()
    assert not found, "numbers outside Settings:\n" + "\n".join(found)
