"""Liveness of a proxy's server: heartbeats, lost/regained, reconnection.

Servers publish a heartbeat every ``PZC_HEARTBEAT`` seconds; a proxy declares its
server lost after three missed ones (any notification also counts as a sign of
life), then probes the REP endpoint with 'info', moves its subscriptions to the
server's (possibly new) PUB endpoint, and declares it regained once the server
has acknowledged them, so every emission after ``regained`` is delivered.

Thread affinity: ``Liveness`` methods run on the I/O thread; ``ConnectionState``
lives in the thread that created the proxy and its signals are emitted through
the delivery path.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any, Dict, List

from . import config
from ._qt import QObject, Signal
from .agent import ACK_PREFIX, FUTURE_TOPIC, HEARTBEAT_TOPIC, Agent, connectable, new_msgid
from .delivery import dispatcher
from .errors import ConnectionLost
from .futures import _settle
from .protocol import Envelope

logger = logging.getLogger(__name__)


class ConnectionState(QObject):
    """Liveness of a proxy's server, driven by its heartbeat.

    Thread affinity: lives in the thread that created the proxy; its signals are
    emitted through the delivery path.
    """

    #: Signal() -- the server missed three heartbeats (or a call timed out).
    lost = Signal()
    #: Signal() -- the server answered again after being lost.
    regained = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._alive = True

    def alive(self) -> bool:
        """Whether the server is believed to be alive."""
        return self._alive


class Liveness:
    """The heartbeat and reconnection half of a proxy's core (mixed into ``_ProxyCore``)."""

    # ---------------------------------------------------------------- info / liveness (I/O thread)
    def apply_info(self, info: Dict[str, Any]) -> None:
        self.sender = info.get("rep_endpoint", self.endpoint)
        self.pub = connectable(info["pub_endpoint"], self.endpoint)
        self.caps = frozenset(info.get("capabilities", ()))
        self.period = float(info.get("heartbeat", config.heartbeat()))
        self.tracking = "heartbeat" in self.caps

    def _subscribe_internal(self) -> None:
        agent = self.agent
        agent._sub_connect(self.pub)
        agent._add_sub(self.sender, FUTURE_TOPIC, self._on_future_frames)
        if "heartbeat" in self.caps:
            agent._add_sub(self.sender, HEARTBEAT_TOPIC, self._on_heartbeat)

    def _on_heartbeat(self, env: Envelope, frames: List[bytes]) -> None:
        self.last_seen = time.monotonic()
        if not self.alive:
            self._confirm()

    def _confirm(self) -> None:
        """Declare the server regained once it has our subscriptions again (I/O thread).

        The first heartbeat after a loss proves the SUB socket reconnected and
        re-sent its subscriptions; an acknowledgement marker subscribed now
        follows them on the same pipe, so when it comes back every remote signal
        connection is active on the server and 'regained' can promise delivery.
        """
        if "ack" not in self.caps:
            self._set_alive(True)
            return
        if self.confirming is not None:
            return
        agent = self.agent
        token = self.confirming = f"{ACK_PREFIX}{new_msgid()}"
        sender = self.sender

        def finish(*_: Any) -> None:
            if self.confirming == token:
                self.confirming = None
                agent._remove_sub(sender, token)
                self._set_alive(True)

        agent._add_sub(sender, token, finish)
        agent._io.call_later(self.timeout, finish)  # an old or busy server: regained anyway

    def _check_liveness(self) -> None:
        if self.closed:
            return
        seen = max(self.last_seen, self.agent._last_rx)  # a flood delays heartbeats, not life
        if self.alive and time.monotonic() - seen > 3 * self.period:
            self._set_alive(False)
        if not self.alive:
            self._probe()
        self.agent._io.call_later(min(self.period, 0.5) if not self.alive else self.period / 2,
                                  self._check_liveness)

    def _set_alive(self, alive: bool) -> None:
        if self.alive == alive or self.closed:
            return
        self.alive = alive
        state = self.connection
        if alive:
            self.last_seen = time.monotonic()
        else:
            # drop queued non-blocking calls: nothing is replayed to a restarted server
            agent = self.agent
            for sock in list(agent._async_socks.values()):
                agent._io.unregister(sock)
            agent._async_socks.clear()
            pending = list(agent._async_pending.values())
            agent._async_pending.clear()
            for fut, _ in pending:
                dispatcher.post(lambda fut=fut: _settle(fut, exc=ConnectionLost(
                    f"the server at {self.endpoint} was lost before it answered")))

        def emit() -> None:
            try:
                state._alive = alive
                (state.regained if alive else state.lost).emit()
            except RuntimeError:
                pass  # the state object is gone with its thread

        self.target.post(emit)

    def _probe(self) -> None:
        """Ask the (possibly restarted) server for its endpoints; I/O thread."""
        if self.probing:
            return
        self.probing = True
        probe = Agent(protocol=self.agent.protocol, curve=self.agent.curve, _bind=False)

        def done(fut: concurrent.futures.Future) -> None:
            self.probing = False
            try:
                info = fut.result()
            except BaseException:
                info = None
            threading.Thread(target=probe.stop, daemon=True).start()
            if isinstance(info, dict) and not self.closed:
                self.agent._io.submit(lambda: self._rewire(info))

        fut = probe.request_async(self.endpoint, "info")
        fut.add_done_callback(done)
        self.agent._io.call_later(max(self.period, 1.0), lambda: fut.cancel())

    def _rewire(self, info: Dict[str, Any]) -> None:
        if self.closed:
            return
        old_pub, old_sender = self.pub, self.sender
        self.apply_info(info)
        agent = self.agent
        now = time.monotonic()
        # The server answers again. A new PUB endpoint needs a new connection; on the
        # same one, a SUB that reconnected by itself may still not have re-sent its
        # subscriptions (no heartbeat comes then), so a fresh connection is made too,
        # at most once per few heartbeat periods so the first heartbeat has time to come.
        if self.pub != old_pub or now - self.rewired > max(3 * self.period, 1.0):
            self.rewired = now
            agent._sub_replace(old_pub, self.pub)
        if self.sender != old_sender:
            for (sender, topic), sub in list(agent._subs.items()):
                agent._remove_sub(sender, topic)
                agent._add_sub(self.sender, topic, sub.sink)
        if not self.tracking:
            self._set_alive(True)  # else the next heartbeat confirms it (_confirm)
