"""Liveness of a proxy's server: heartbeats, lost/regained, reconnection.

Servers publish a heartbeat every ``PZC_HEARTBEAT`` seconds; a proxy declares its
server lost after three missed ones (any notification also counts as a sign of
life), then probes the REP endpoint with 'info', moves its subscriptions to the
server's (possibly new) PUB endpoint, and declares it regained once the server
has acknowledged them, so every emission after ``regained`` is delivered.

The liveness part of a proxy's core owns that state (alive, last sign of life,
probing, confirming) and works through the core's public interface: its server
info (``sender``, ``pub``, ``caps``, ``period``, ``tracking``, ``apply_info``),
its ``requester`` and ``subscriber`` parts, its ``io`` thread and its
``connection`` object.

Thread affinity: ``Liveness`` methods run on the I/O thread unless noted;
``ConnectionState`` lives in the thread that created the proxy and its signals
are emitted through the delivery path.
"""
from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any, Dict, List, Optional

from ._qt import QObject, Signal
from .errors import ConnectionLost
from .protocol import ACK_PREFIX, FUTURE_TOPIC, HEARTBEAT_TOPIC, Envelope, new_msgid
from .requesting import Requester

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

    def announce(self, alive: bool) -> None:
        """Record the new state and emit ``lost`` or ``regained`` (the thread that owns it)."""
        try:
            self._alive = alive
            (self.regained if alive else self.lost).emit()
        except RuntimeError:
            pass  # the state object is gone with its thread


class Liveness:
    """The heartbeat and reconnection part of a proxy's core (see the module docstring)."""

    def __init__(self, core: Any) -> None:
        self.core = core
        #: Whether the server is believed to be alive (read from any thread).
        self.alive = True
        self._last_seen = time.monotonic()
        self._probing = False
        self._checking = False
        self._confirming: Optional[str] = None
        self._rewired = time.monotonic()

    @property
    def last_seen(self) -> float:
        """``time.monotonic()`` of the last heartbeat (or of becoming alive)."""
        return self._last_seen

    # ---------------------------------------------------------------- subscriptions (I/O thread)
    def subscribe_internal(self, future_sink: Any) -> None:
        """Connect to the server's PUB endpoint and listen to its futures and heartbeats."""
        core = self.core
        subscriber = core.subscriber
        subscriber.connect(core.pub)
        subscriber.add(core.sender, FUTURE_TOPIC, future_sink)
        if "heartbeat" in core.caps:
            subscriber.add(core.sender, HEARTBEAT_TOPIC, self._on_heartbeat)

    def _on_heartbeat(self, env: Envelope, frames: List[bytes]) -> None:
        self._last_seen = time.monotonic()
        if not self.alive:
            self._confirm()

    def _confirm(self) -> None:
        """Declare the server regained once it has our subscriptions again (I/O thread).

        The first heartbeat after a loss proves the SUB socket reconnected and
        re-sent its subscriptions; an acknowledgement marker subscribed now
        follows them on the same pipe, so when it comes back every remote signal
        connection is active on the server and 'regained' can promise delivery.
        """
        core = self.core
        if "ack" not in core.caps:
            self.set_alive(True)
            return
        if self._confirming is not None:
            return
        subscriber = core.subscriber
        token = self._confirming = f"{ACK_PREFIX}{new_msgid()}"
        sender = core.sender

        def finish(*_: Any) -> None:
            if self._confirming == token:
                self._confirming = None
                subscriber.remove(sender, token)
                self.set_alive(True)

        subscriber.add(sender, token, finish)
        core.io.call_later(core.timeout, finish)  # an old or busy server: regained anyway

    # ---------------------------------------------------------------- checking (I/O thread)
    def start_checking(self) -> None:
        """Check the heartbeat from now on (once; any later call does nothing)."""
        if not self._checking:
            self._checking = True
            self.core.io.call_later(min(self.core.period, self.core.settings.liveness_check_interval), self._check)

    def _check(self) -> None:
        core = self.core
        if core.closed:
            return
        seen = max(self._last_seen, core.subscriber.last_received)  # a flood delays heartbeats, not life
        if self.alive and time.monotonic() - seen > core.settings.missed_heartbeats * core.period:
            self.set_alive(False)
        if not self.alive:
            self._probe()
        core.io.call_later(min(core.period, core.settings.liveness_check_interval) if not self.alive else core.period / 2, self._check)

    def call_timed_out(self) -> None:
        """A synchronous call got no answer (any thread): without heartbeats, that means lost."""
        if not self.core.tracking:
            self.core.io.submit(lambda: (self.set_alive(False), self.start_checking()))

    def call_answered(self) -> None:
        """A synchronous call was answered (any thread)."""
        if not self.alive:
            self.core.io.submit(lambda: self.set_alive(True))

    def set_alive(self, alive: bool) -> None:
        core = self.core
        if self.alive == alive or core.closed:
            return
        self.alive = alive
        if alive:
            self._last_seen = time.monotonic()
        else:
            # drop queued non-blocking calls: nothing is replayed to a restarted server
            endpoint = core.endpoint
            core.requester.abandon_all(lambda: ConnectionLost(
                f"the server at {endpoint} was lost before it answered"))
        state = core.connection
        core.target.post(lambda: state.announce(alive))

    def _probe(self) -> None:
        """Ask the (possibly restarted) server for its endpoints; I/O thread."""
        if self._probing:
            return
        self._probing = True
        core = self.core
        probe = Requester(core.protocol, core.io, core.curve)

        def done(fut: concurrent.futures.Future) -> None:
            self._probing = False
            try:
                info = fut.result()
            except BaseException:
                info = None
            core.io.submit(probe.close_sockets)
            probe.close()
            if isinstance(info, dict) and not core.closed:
                core.io.submit(lambda: self._rewire(info))

        fut = probe.request_async(core.endpoint, "info")
        fut.add_done_callback(done)
        core.io.call_later(max(core.period, core.settings.liveness_floor), lambda: fut.cancel())

    def _rewire(self, info: Dict[str, Any]) -> None:
        core = self.core
        if core.closed:
            return
        old_pub, old_sender = core.pub, core.sender
        core.apply_info(info)
        now = time.monotonic()
        # The server answers again. A new PUB endpoint needs a new connection; on the
        # same one, a SUB that reconnected by itself may still not have re-sent its
        # subscriptions (no heartbeat comes then), so a fresh connection is made too,
        # at most once per few heartbeat periods so the first heartbeat has time to come.
        if core.pub != old_pub or now - self._rewired > max(core.settings.missed_heartbeats * core.period,
                                                         core.settings.liveness_floor):
            self._rewired = now
            core.subscriber.replace(old_pub, core.pub)
        if core.sender != old_sender:
            core.subscriber.rename_sender(core.sender)
        if not core.tracking:
            self.set_alive(True)  # else the next heartbeat confirms it (_confirm)
