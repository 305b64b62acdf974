"""Agent: request/reply, publish/subscribe with exact topics, hooks and their threads."""
from __future__ import annotations

import threading

from conftest import wait_until_turning as wait_until
from pizco_qt import Agent


class Echo(Agent):
    def __init__(self, *a, **kw):
        self.hook_threads = []
        self.subs = []
        super().__init__(*a, **kw)

    def on_request(self, sender, topic, content, msgid):
        self.hook_threads.append(threading.current_thread().name)
        if content in ("info", "stop"):
            return super().on_request(sender, topic, content, msgid)
        return ("echo", content)

    def on_subscribe(self, topic, count):
        self.subs.append(("+", topic, count, threading.current_thread().name))

    def on_unsubscribe(self, topic, count):
        self.subs.append(("-", topic, count, threading.current_thread().name))


def test_request_reply_and_hook_thread(closing):
    server = closing(Echo())
    client = closing(Agent())
    assert client.request(server.rep_endpoint, [1, 2]) == ("echo", [1, 2])
    assert server.hook_threads == [f"pizco-server {'tcp://127.0.0.1:0'}"]


def test_publish_subscribe_exact_topics_and_counts(closing):
    server = closing(Echo())
    client = closing(Agent())
    client2 = closing(Agent())
    got, got10 = [], []
    client.subscribe(server.rep_endpoint, "topic1", lambda *a: got.append(a))
    client2.subscribe(server.rep_endpoint, "topic10", lambda *a: got10.append(a))
    wait_until(lambda: server.subscriber_count("topic1") == 1 and server.subscriber_count("topic10") == 1)
    server.publish("topic10", "ten")
    server.publish("topic1", "one")
    wait_until(lambda: got and got10)
    assert [a[2] for a in got] == ["one"]  # topic1 never receives topic10
    assert [a[2] for a in got10] == ["ten"]
    assert got[0][0] == server.rep_endpoint and got[0][1] == "topic1"
    client.unsubscribe(server.rep_endpoint, "topic1")
    wait_until(lambda: ("-", "topic1", 0) in [s[:3] for s in server.subs])
    assert ("+", "topic1", 1) in [s[:3] for s in server.subs]
    assert all(s[3].startswith("pizco-server") for s in server.subs)


def test_subscribe_with_explicit_pub_endpoint(closing):
    server = closing(Echo())
    client = closing(Agent())
    got = []
    client.subscribe(server.rep_endpoint, "t", lambda *a: got.append(a[2]), pub_endpoint=server.pub_endpoint)
    wait_until(lambda: server.subscriber_count("t") == 1)
    server.publish("t", {"x": 1})
    wait_until(lambda: got)
    assert got == [{"x": 1}]


def test_on_notification_default(closing):
    seen = []

    class Listener(Agent):
        def on_notification(self, sender, topic, content, msgid):
            seen.append((topic, content))

    server = closing(Echo())
    client = closing(Listener())
    client.subscribe(server.rep_endpoint, "news")
    server.publish("news", 5)
    wait_until(lambda: seen)
    assert seen == [("news", 5)]


def test_requests_from_many_threads(closing):
    server = closing(Echo())
    client = closing(Agent())
    out = {}

    def work(k):
        out[k] = [client.request(server.rep_endpoint, (k, i)) for i in range(100)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for k in range(6):
        assert out[k] == [("echo", (k, i)) for i in range(100)]


def test_io_thread_is_a_qthread_and_stops_with_last_agent():
    from pizco_qt import iothread
    from qtpy import QtCore
    agent = Agent()
    io = iothread.io_thread()
    assert isinstance(io, QtCore.QThread) and io.isRunning()
    agent.stop()
    assert iothread._io is None
    assert io.wait(2000)
