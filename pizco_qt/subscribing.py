"""The subscribing part: one SUB socket on the I/O thread and the topics it listens to.

Each subscription is a (sender, topic) pair with a sink called on the I/O
thread with the checked envelope and the raw frames (the sink decides where
the content is decoded and delivered). Topic filtering is exact: the ZMQ
prefix is the whole header, so ``topic1`` never matches ``topic10``.

Thread affinity: ``request_ack`` from any thread but the I/O thread; every
other method on the I/O thread only (use ``io.submit``/``io.call``).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import zmq

from . import iothread
from .config import Settings
from .delivery import held_schedules, report_exception
from .errors import ProtocolError
from .protocol import ACK_PREFIX, Envelope, Protocol, header, new_msgid
from .security import CurveConfig
from .zmq_io import recv_frames

logger = logging.getLogger(__name__)

__all__ = ["Subscriber", "Sink"]

#: ``sink(envelope, frames)``: called on the I/O thread for each notification of a subscription.
Sink = Callable[[Envelope, List[bytes]], None]

class _Subscription:
    __slots__ = ("sender", "topic", "sink", "prefix")

    def __init__(self, sender: str, topic: str, sink: Sink) -> None:
        self.sender, self.topic, self.sink = sender, topic, sink
        self.prefix = header(sender, topic)


class Subscriber:
    """Owns a SUB socket (made on first use), its PUB connections and its subscriptions."""

    def __init__(self, protocol: Protocol, io: Any, curve: Optional[CurveConfig] = None,
                 settings: Optional[Settings] = None) -> None:
        self.protocol = protocol
        self.settings = settings if settings is not None else Settings.from_environment()
        self.curve = curve
        self._io = io
        self._sock: Optional[zmq.Socket] = None
        self._connected: Dict[str, int] = {}
        self._subs: Dict[Tuple[str, str], _Subscription] = {}
        self._last_rx = 0.0

    @property
    def last_received(self) -> float:
        """``time.monotonic()`` of the last notification received (0.0 before the first)."""
        return self._last_rx

    # ------------------------------------------------------------------ socket and connections
    def _ensure_sock(self) -> zmq.Socket:
        sock = self._sock
        if sock is None:
            sock = iothread.context().socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, self.settings.hwm)
            sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message)
            if self.curve is not None:
                self.curve.configure_client(sock)
            self._sock = sock
            self._io.register(sock, self._on_readable)
        return sock

    def connect(self, pub_endpoint: str) -> None:
        """Connect to a PUB endpoint (counted: connect twice, disconnect twice)."""
        sock = self._ensure_sock()
        n = self._connected.get(pub_endpoint, 0)
        if n == 0:
            sock.connect(pub_endpoint)
        self._connected[pub_endpoint] = n + 1

    def disconnect(self, pub_endpoint: str) -> None:
        """Undo one ``connect``; the last one drops the connection."""
        n = self._connected.get(pub_endpoint, 0) - 1
        if n <= 0:
            self._connected.pop(pub_endpoint, None)
            self._rebuild()
        else:
            self._connected[pub_endpoint] = n

    def replace(self, old: str, new: str) -> None:
        """Move the connection to PUB endpoint ``old`` to ``new``, on a fresh socket."""
        n = self._connected.pop(old, 0)
        self._connected[new] = self._connected.get(new, 0) + max(n, 1)
        self._rebuild()

    def _rebuild(self) -> None:
        """Replace the SUB socket by a fresh one with the same connections and subscriptions.

        libzmq can abort in a SUB socket's fair queue when ``disconnect()`` drops a
        pipe that still holds messages, so endpoints are never disconnected from a
        live SUB: the whole socket is closed (dropping what it held) and rebuilt.
        """
        old = self._sock
        if old is None:
            return
        self._io.unregister(old, close=False)
        old.close(linger=0)
        self._sock = None
        if not self._connected and not self._subs:
            return
        sock = self._ensure_sock()
        for endpoint in self._connected:
            sock.connect(endpoint)
        for sub in self._subs.values():
            sock.setsockopt(zmq.SUBSCRIBE, sub.prefix)

    # ------------------------------------------------------------------ subscriptions
    def add(self, sender: str, topic: str, sink: Sink) -> None:
        """Listen to ``topic`` of ``sender``; ``sink`` gets each notification."""
        sub = _Subscription(sender, topic, sink)
        self._subs[(sender, topic)] = sub
        self._ensure_sock().setsockopt(zmq.SUBSCRIBE, sub.prefix)

    def remove(self, sender: str, topic: str) -> None:
        """Stop listening to ``topic`` of ``sender`` (nothing if not listening)."""
        sub = self._subs.pop((sender, topic), None)
        if sub is not None and self._sock is not None:
            self._sock.setsockopt(zmq.UNSUBSCRIBE, sub.prefix)

    def rename_sender(self, new_sender: str) -> None:
        """Listen to every subscribed topic under the publisher's new identity ``new_sender``."""
        for (sender, topic), sub in list(self._subs.items()):
            self.remove(sender, topic)
            self.add(new_sender, topic, sub.sink)

    def request_ack(self, sender: str, timeout: float) -> bool:
        """Wait until the publisher has seen every subscription made so far (bounded; any thread
        but the I/O thread). True if it acknowledged in time."""
        token = f"{ACK_PREFIX}{new_msgid()}"
        event = threading.Event()

        def sink(env: Envelope, frames: List[bytes]) -> None:
            event.set()
            self.remove(sender, token)

        self._io.submit(lambda: self.add(sender, token, sink))
        ok = event.wait(timeout)
        if not ok:
            self._io.submit(lambda: self.remove(sender, token))
        return ok

    # ------------------------------------------------------------------ receiving
    def _on_readable(self, sock: zmq.Socket) -> None:
        with held_schedules():  # one batch per target thread for what is readable now
            self._drain(sock)

    def _drain(self, sock: zmq.Socket) -> None:
        check = self.protocol.check
        subs = self._subs
        for _ in range(self.settings.notification_batch):
            try:
                frames = recv_frames(sock, zmq.NOBLOCK, 5)
            except zmq.Again:
                return
            self._last_rx = time.monotonic()  # any notification is a sign of life
            try:
                env = check(frames)
            except ProtocolError as exc:
                logger.warning("dropping a notification: %s", exc)
                continue
            sub = subs.get((env.sender, env.topic))
            if sub is not None:
                try:
                    sub.sink(env, frames)
                except Exception:
                    report_exception("a subscription sink")

    def close(self) -> None:
        """Close the SUB socket and forget every subscription."""
        if self._sock is not None:
            self._io.unregister(self._sock)
        self._sock = None
        self._subs.clear()
