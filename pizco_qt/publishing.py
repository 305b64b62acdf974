"""The publishing part: an XPUB socket on the I/O thread.

It publishes notifications (queued from any thread, sent by the I/O thread,
never blocking: a subscriber at its high-water mark loses what does not fit),
publishes a heartbeat while someone listens to it, and sees every subscribe and
unsubscribe (``XPUB_VERBOSER``). It reports those to its owner through
``on_change(topic, count, subscribed)`` and acknowledges the marker
subscriptions proxies use to know that their subscriptions are active, after
the changes before them have been handled.

Thread affinity: ``publish``, ``publish_frames``, ``subscriber_count`` and
``counts`` from any thread; the rest on the I/O thread.
"""
from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import zmq

from . import iothread
from .config import Settings
from .errors import BindError
from .protocol import ACK_PREFIX, FUTURE_TOPIC, HEARTBEAT_TOPIC, LOCK_TOPIC, Protocol, header, new_msgid
from .endpoints import bindable, resolved
from .zmq_io import send_frames

logger = logging.getLogger(__name__)

__all__ = ["Publisher", "SubscriberCounts"]



#: Topics pizco_qt itself uses between its peers (not counted in ``subscribers``).
_OWN_TOPICS = frozenset({HEARTBEAT_TOPIC, FUTURE_TOPIC, LOCK_TOPIC})


class SubscriberCounts(Mapping):
    """A live, read-only view: topic -> number of SUB sockets subscribed to it.

    Holds the counts that ``on_subscribe`` / ``on_unsubscribe`` were given (each
    changes once its hook has run). Topics without subscribers are absent, and
    reading one gives 0 (as Pizco's counter did). pizco_qt's own topics
    (heartbeat, futures, acknowledgements) are left out.
    """

    __slots__ = ("_counts",)

    def __init__(self, counts: Dict[str, int]) -> None:
        self._counts = counts

    def _live(self) -> Dict[str, int]:
        counts = dict(self._counts)  # a snapshot: the worker and I/O threads update it
        return {t: c for t, c in counts.items() if c > 0 and t not in _OWN_TOPICS}

    def __getitem__(self, topic: str) -> int:
        if topic in _OWN_TOPICS:
            return 0
        return max(self._counts.get(topic, 0), 0)

    def __contains__(self, topic: object) -> bool:
        return topic not in _OWN_TOPICS and self._counts.get(topic, 0) > 0  # type: ignore[call-overload]

    def __iter__(self) -> Iterator[str]:
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._live())

    def __repr__(self) -> str:
        return f"SubscriberCounts({self._live()!r})"


def _set_count(counts: Dict[str, int], topic: str, count: int) -> None:
    """Record a topic's subscriber count; a topic at zero is forgotten."""
    if count:
        counts[topic] = count
    else:
        counts.pop(topic, None)


class Publisher:
    """Owns the XPUB socket, the publication queue and the subscriber counts.

    Parameters
    ----------
    protocol : Protocol
        Encodes notifications.
    io : IOThread
        The thread that owns the socket.
    configure : callable
        ``configure(sock)`` applies socket options (size limit, CURVE) before bind.
    on_change : callable
        ``on_change(topic, count, subscribed, done)`` for each subscribe or
        unsubscribe of a user topic (I/O thread); it must run ``done()`` once the
        change is handled (the count is then published by ``subscriber_count``).
    run_after_changes : callable
        ``run_after_changes(fn)`` runs ``fn`` after the changes reported so far are handled.
    wanted : callable
        ``wanted(topic)``: whether a new subscription to ``topic`` is counted and
        reported (I/O thread); the others are ignored.
    serving : callable
        ``serving()``: whether requests are still answered; heartbeats stop when not,
        so proxies see the server lost.
    settings : Settings
        Queue lengths, heartbeat period, batch size.
    """

    def __init__(self, protocol: Protocol, io: Any, configure: Callable[[zmq.Socket], None],
                 on_change: Callable[[str, int, bool, Callable[[], None]], None],
                 run_after_changes: Callable[[Callable[[], None]], None],
                 wanted: Callable[[str], bool], serving: Callable[[], bool], settings: Settings) -> None:
        self.protocol = protocol
        self.settings = settings
        self.endpoint = ""
        #: The identity put in each notification's header (the owner sets it).
        self.sender = ""
        self._io = io
        self._configure = configure
        self._on_change = on_change
        self._run_after_changes = run_after_changes
        self._wanted = wanted
        self._serving = serving
        self._sock: Optional[zmq.Socket] = None
        self._queue: "collections.deque[List[Any]]" = collections.deque()
        self._scheduled = False
        self._counts: Dict[str, int] = {}
        self._handled: Dict[str, int] = {}
        self._closed = False

    # ------------------------------------------------------------------ binding (I/O thread)
    def bind(self, requested: str) -> str:
        """Bind the XPUB socket (I/O thread); returns the bound endpoint.

        Raises
        ------
        BindError
            If the endpoint cannot be bound.
        """
        sock = iothread.context().socket(zmq.XPUB)
        try:
            sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        except (AttributeError, zmq.ZMQError):
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.SNDHWM, self.settings.send_hwm)  # per subscriber: a stalled one cannot grow it
        sock.setsockopt(zmq.RCVHWM, self.settings.hwm)
        self._configure(sock)
        try:
            sock.bind(bindable(requested))
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise BindError(f"cannot bind {requested}: {exc}") from exc
        self.endpoint = resolved(requested, sock.getsockopt_string(zmq.LAST_ENDPOINT))
        self._sock = sock
        self._io.register(sock, self._on_readable)
        return self.endpoint

    # ------------------------------------------------------------------ publishing (any thread)
    def publish(self, topic: str, content: Any) -> None:
        """Publish ``content`` on ``topic`` (never blocks)."""
        self.publish_frames(self.protocol.encode(self.sender, topic, content, new_msgid()))

    def publish_frames(self, frames: List[Any]) -> None:
        """Publish an encoded notification (never blocks)."""
        self._queue.append(frames)
        if not self._scheduled:
            self._scheduled = True
            self._io.submit(self.flush)

    def flush(self) -> None:
        """Send what is queued (I/O thread)."""
        self._scheduled = False
        queue = self._queue
        sock = self._sock
        if sock is None:
            queue.clear()
            return
        while queue:
            frames = queue.popleft()
            try:
                send_frames(sock, frames, zmq.NOBLOCK)
            except zmq.Again:
                pass  # a subscriber reached its high-water mark: dropped for it
            except zmq.ZMQError:
                queue.clear()
                return

    def start_heartbeat(self) -> None:
        """Publish a heartbeat every ``PZC_HEARTBEAT`` seconds while someone listens to it."""
        self._io.call_later(0, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        if self._sock is None or self._closed:
            return
        if not self._serving():  # nobody answers requests: proxies must see the server lost
            logger.error("the server thread of %s has ended: heartbeats stop", self.sender)
            return
        if self._counts.get(HEARTBEAT_TOPIC):
            self.publish_frames(self.protocol.encode(self.sender, HEARTBEAT_TOPIC,
                                                     {"pub_endpoint": self.endpoint}, new_msgid()))
        self._io.call_later(self.settings.heartbeat, self._heartbeat_tick)

    # ------------------------------------------------------------------ subscriptions (I/O thread)
    def _on_readable(self, sock: zmq.Socket) -> None:
        prefix = header(self.sender, "")
        plen = len(prefix)
        events: List[Tuple[str, bool]] = []
        acks: List[str] = []
        for _ in range(self.settings.io_batch):
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not msg or msg[0] not in (0, 1):
                logger.warning("ignoring a malformed message on %s", self.endpoint)
                continue
            if not msg.startswith(prefix, 1):
                continue  # someone else's topic or a bare prefix
            try:
                topic = msg[1 + plen:].decode("utf-8")
            except UnicodeDecodeError:
                logger.warning("ignoring a subscription with a bad utf-8 topic on %s", self.endpoint)
                continue
            if "+" in topic or len(msg) - 1 - plen > self.settings.max_topic_bytes:
                continue
            subscribed = msg[0] == 1
            if topic.startswith(ACK_PREFIX):
                if subscribed and len(acks) < self.settings.max_acks:
                    acks.append(topic)
                continue
            events.append((topic, subscribed))
        for topic, subscribed in events:
            if topic not in self._counts and (not subscribed or not self._wanted(topic)):
                continue  # ignored: no counter, nothing runs
            count = max(self._counts.get(topic, 0) + (1 if subscribed else -1), 0)
            _set_count(self._counts, topic, count)  # counters of a topic nobody wants are deleted
            if topic.startswith("__"):
                _set_count(self._handled, topic, count)
                continue
            self._on_change(topic, count, subscribed, self._handled_setter(topic, count))
        for topic in acks:
            # after the subscriptions it follows have been handled
            self._run_after_changes(lambda t=topic: self._io.submit(lambda: self._send_ack(t)))

    def _handled_setter(self, topic: str, count: int) -> Callable[[], None]:
        def done() -> None:
            _set_count(self._handled, topic, count)
        return done

    def _send_ack(self, topic: str) -> None:
        self.publish_frames(self.protocol.encode(self.sender, topic, None, new_msgid()))

    # ------------------------------------------------------------------ counts (any thread)
    def subscriber_count(self, topic: str) -> int:
        """How many SUB sockets subscribe to ``topic``, once the owner has handled the change."""
        return self._handled.get(topic, 0)

    @property
    def subscribers(self) -> "SubscriberCounts":
        """A live, read-only view of ``subscriber_count`` for every topic with subscribers."""
        return SubscriberCounts(self._handled)

    def handled_counts(self) -> Dict[str, int]:
        """A snapshot of ``subscriber_count`` for every topic ever subscribed."""
        return dict(self._handled)

    def counts(self) -> Dict[str, int]:
        """A snapshot of the subscriber counts as the socket reported them (handled or not)."""
        return dict(self._counts)

    # ------------------------------------------------------------------ closing (I/O thread)
    def close(self) -> None:
        """Send what is queued, then close the socket."""
        self._closed = True
        self.flush()
        if self._sock is not None:
            self._io.unregister(self._sock)
        self._sock = None
        # forget the owner's functions: no cycle keeps the owner alive
        self._configure = _ignore
        self._on_change = _ignore
        self._run_after_changes = _ignore
        self._wanted = _ignore
        self._serving = _ignore


def _set_count(counts: Dict[str, int], topic: str, count: int) -> None:
    """Record a topic's subscriber count; a topic at zero is forgotten."""
    if count:
        counts[topic] = count
    else:
        counts.pop(topic, None)


def _ignore(*args: Any) -> None:
    """What a closed publisher calls instead of its owner's functions."""
