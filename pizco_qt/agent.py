"""Agent: the communicating object under both Server and Proxy.

An agent that binds owns a ROUTER socket (requests, served by its worker thread,
which also runs ``on_request``/``on_subscribe``/``on_unsubscribe`` in arrival
order) and an XPUB socket (notifications, owned by the I/O thread, which sees
every subscribe and unsubscribe). As a client, an agent sends synchronous
requests through a DEALER owned by the calling thread (no thread hop; late
replies are told apart by message id), non-blocking requests and subscriptions
through sockets owned by the I/O thread.

Thread affinity: public methods may be called from any thread.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import socket as _socket
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import zmq

from . import config, iothread
from .delivery import Target, current_target, dispatcher, held_schedules, report_exception
from ._frames import close_owned, recv_frames, recv_reply, send_frames, send_one
from .errors import PizcoError, ProtocolError, RemoteTimeout
from .protocol import (ACK_PREFIX, CAPABILITIES, FUTURE_TOPIC, HEARTBEAT_TOPIC, Envelope, Protocol,  # noqa: F401
                       _id_prefix, header, new_msgid)
from .serving import Serving
from .security import CurveChannel, CurveConfig, unregister_curve_server

logger = logging.getLogger(__name__)

__all__ = ["Agent", "CAPABILITIES", "ACK_PREFIX", "HEARTBEAT_TOPIC", "FUTURE_TOPIC"]

_live_agents: "weakref.WeakSet[Agent]" = weakref.WeakSet()


def connectable(endpoint: str, dialed: Optional[str] = None) -> str:
    """An endpoint a client can connect to (a wildcard host becomes the host it dialed)."""
    if not endpoint.startswith("tcp://"):
        return endpoint
    host, port = endpoint[6:].rsplit(":", 1)
    if host in ("*", "0.0.0.0", "[::]", "::"):
        dial_host = "127.0.0.1"
        if dialed and dialed.startswith("tcp://"):
            dial_host = dialed[6:].rsplit(":", 1)[0]
            if dial_host in ("*", "0.0.0.0"):
                dial_host = "127.0.0.1"
        return f"tcp://{dial_host}:{port}"
    return endpoint


class _Channel:
    """A DEALER owned by one thread for synchronous requests to one endpoint."""

    __slots__ = ("sock", "lock", "endpoint", "closed", "timeout_ms", "__weakref__")

    #: Whether ``roundtrip`` takes a compact frame too.
    compact = True

    def __init__(self, endpoint: str) -> None:
        sock = iothread.context().socket(zmq.DEALER)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue for a peer that is not there
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        self.sock = sock
        self.lock = threading.Lock()
        self.endpoint = endpoint
        self.closed = False
        self.timeout_ms = -1

    def roundtrip(self, frames: "List[Any] | bytes", msgid: bytes, timeout: float, action: str) -> List[Any]:
        """Send a request (its five frames, or one compact frame) and return its reply's frames."""
        sock = self.sock
        with self.lock:
            if self.closed:
                raise PizcoError(f"the connection to {self.endpoint} is closed")
            ms = max(1, int(timeout * 1000))
            if ms != self.timeout_ms:  # blocking send/recv bounded by the socket's timeouts
                sock.setsockopt(zmq.SNDTIMEO, ms)
                sock.setsockopt(zmq.RCVTIMEO, ms)
                self.timeout_ms = ms
            deadline = time.monotonic() + timeout
            try:
                if type(frames) is bytes:
                    send_one(sock, frames)
                else:
                    send_frames(sock, [b""] + frames)
            except zmq.Again:
                raise RemoteTimeout(action, self.endpoint, timeout) from None
            while True:
                try:
                    reply = recv_reply(sock)
                except zmq.Again:
                    raise RemoteTimeout(action, self.endpoint, timeout) from None
                if reply is not None and len(reply) >= 4 and reply[3] == msgid:
                    return reply
                # a late reply to an earlier call that timed out: drop it
                logger.debug("dropping a stale reply from %s", self.endpoint)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RemoteTimeout(action, self.endpoint, timeout)
                sock.setsockopt(zmq.RCVTIMEO, max(1, int(remaining * 1000)))
                self.timeout_ms = -1

    def close(self) -> None:
        close_owned(self, lambda: self.sock.close(linger=0))


class _ChannelHolder:
    """Per-thread storage whose collection (at thread exit) closes its channels."""

    def __init__(self) -> None:
        self.channels: Dict[str, _Channel] = {}

    def __del__(self) -> None:
        for ch in self.channels.values():
            try:
                ch.close()
            except Exception:
                pass


class _Subscription:
    """A topic this agent listens to, with the sink called on the I/O thread."""

    __slots__ = ("sender", "topic", "sink", "prefix")

    def __init__(self, sender: str, topic: str, sink: Callable[[Envelope, List[bytes]], None]) -> None:
        self.sender, self.topic, self.sink = sender, topic, sink
        self.prefix = header(sender, topic)


class Agent(Serving):
    """Sends and serves requests, publishes and subscribes to notifications.

    Parameters
    ----------
    rep_endpoint, pub_endpoint : str
        Endpoints to bind; port 0 picks a free port (``.rep_endpoint`` /
        ``.pub_endpoint`` give the bound ones). Any ZMQ transport works.
    protocol : Protocol, optional
        Key and serializer; default from ``PZC_KEY`` and ``PZC_SER``.
    allow_insecure : bool
        Allow binding a non-loopback address with no key and no CURVE (logged as a WARNING).
    curve : CurveConfig, optional
        CURVE encryption: the server's key pair and allowed clients when binding,
        the server's public key for outgoing requests and subscriptions.

    Raises
    ------
    PizcoError
        If the endpoints cannot be bound or binding would be insecure.

    Thread affinity: any thread; hooks run on the agent's worker thread.
    """

    def __init__(
        self,
        rep_endpoint: Optional[str] = "tcp://127.0.0.1:0",
        pub_endpoint: Optional[str] = "tcp://127.0.0.1:0",
        protocol: Optional[Protocol] = None,
        *,
        allow_insecure: bool = False,
        curve: Optional[CurveConfig] = None,
        _bind: bool = True,
    ) -> None:
        self.protocol = protocol if protocol is not None else Protocol.from_environment()
        self.curve = curve
        self._zap_domain: Optional[str] = None
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._stopper: Optional[threading.Thread] = None
        self._local = threading.local()
        self._channels: "weakref.WeakSet[_Channel]" = weakref.WeakSet()
        self._all_channels: List["weakref.ref[_Channel]"] = []
        self._subs: Dict[Tuple[str, str], _Subscription] = {}
        self._sub_sock: Optional[zmq.Socket] = None
        self._sub_connected: Dict[str, int] = {}
        self._last_rx = 0.0
        self._async_socks: Dict[str, zmq.Socket] = {}
        self._async_pending: Dict[str, Tuple[concurrent.futures.Future, Callable]] = {}
        self._ack_events: Dict[str, threading.Event] = {}
        self._pubq: "collections.deque[List[Any]]" = collections.deque()
        self._pub_scheduled = False
        self._xpub: Optional[zmq.Socket] = None
        self._xpub_counts: Dict[str, int] = {}
        self._handled_counts: Dict[str, int] = {}
        self._worker: Optional[threading.Thread] = None
        self._worker_cmds: "collections.deque[Callable[[], None]]" = collections.deque()
        self._worker_wake: Optional[Tuple[_socket.socket, _socket.socket]] = None
        self._wake_sock: Optional[zmq.Socket] = None
        self._wake_lock = threading.Lock()
        self._wake_id = b"pizco-wake-" + uuid.uuid4().bytes
        self._worker_running = False
        self._worker_busy = False
        self.rep_endpoint: str = ""
        self.pub_endpoint: str = ""
        self.sender: str = f"urn:pizco_qt:{_id_prefix}:{os.getpid()}:{id(self):x}"
        self._io = iothread.acquire()
        _live_agents.add(self)
        if _bind:
            try:
                self._bind(rep_endpoint or "tcp://127.0.0.1:0", pub_endpoint or "tcp://127.0.0.1:0",
                           allow_insecure)
            except BaseException:
                self.stop()
                raise

    # ------------------------------------------------------------------ overridable hooks
    def on_request(self, sender: str, topic: str, content: Any, msgid: str) -> Any:
        """Answer a request (worker thread). The base agent answers 'info' and 'stop'."""
        if content == "info":
            return self._info()
        if content == "stop":
            self._worker_submit(self._stop_from_worker)
            return "stopping"
        return None

    def _info(self) -> Dict[str, Any]:
        return {"rep_endpoint": self.rep_endpoint, "pub_endpoint": self.pub_endpoint,
                "capabilities": list(CAPABILITIES), "heartbeat": config.heartbeat(), "pid": os.getpid()}

    def _stop_from_worker(self) -> None:
        # stop() joins the worker, so it runs in a thread of its own; a later
        # stop() from elsewhere waits for this one to end
        stopper = threading.Thread(target=self.stop, name="pizco-stopper", daemon=True)
        self._stopper = stopper
        stopper.start()

    def on_notification(self, sender: str, topic: str, content: Any, msgid: str) -> None:
        """Called for notifications of subscriptions made without a callback."""

    def on_subscribe(self, topic: str, count: int) -> None:
        """A SUB socket subscribed to ``topic``; ``count`` subscribers now (worker thread)."""

    def on_unsubscribe(self, topic: str, count: int) -> None:
        """A SUB socket unsubscribed from ``topic``; ``count`` subscribers left (worker thread)."""

    # ------------------------------------------------------------------ synchronous requests
    def _channel(self, endpoint: str) -> _Channel:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            holder = self._local.holder = _ChannelHolder()
        ch = holder.channels.get(endpoint)
        if ch is None or ch.closed:
            if self._stopped:
                raise PizcoError(f"this agent is stopped; cannot reach {endpoint}")
            ch = _Channel(endpoint) if self.curve is None or not self.curve.is_client else \
                CurveChannel(endpoint, self.curve, iothread.context())
            holder.channels[endpoint] = ch
            self._all_channels.append(weakref.ref(ch))
        return ch

    def request_frames(self, endpoint: str, content: Any, timeout: Optional[float] = None,
                       action: str = "request", serializer: Optional[str] = None,
                       compact: bool = False) -> List[bytes]:
        """Send a request and return the raw (not yet checked nor decoded) reply frames.

        ``compact=True`` (only for servers that advertise the ``compact``
        capability) sends a small request as one compact frame.
        """
        timeout = config.timeout() if timeout is None else timeout
        msgid = new_msgid()
        ch = self._channel(endpoint)
        if compact and ch.compact:
            frames = self.protocol.encode_compact(self.sender, "", content, msgid, serializer)
        else:
            frames = self.protocol.encode(self.sender, "", content, msgid, serializer)
        return ch.roundtrip(frames, msgid.encode("utf-8"), timeout, action)

    def request(self, recipient: str, content: Any, timeout: Optional[float] = None) -> Any:
        """Send ``content`` to the agent at ``recipient`` and return its reply content.

        Raises
        ------
        RemoteTimeout
            No reply within ``timeout`` (default ``PZC_TIMEOUT`` or 10 s).
        ProtocolError
            The reply is badly signed or cannot be decoded.
        """
        reply = self.request_frames(recipient, content, timeout)
        return self.protocol.decode(reply).content

    # ------------------------------------------------------------------ non-blocking requests (I/O thread)
    def request_async(self, endpoint: str, content: Any,
                      on_reply: Optional[Callable[[List[bytes]], Any]] = None,
                      serializer: Optional[str] = None) -> "concurrent.futures.Future[Any]":
        """Send a request without waiting; the Future resolves with the reply content.

        ``on_reply(frames)`` (run on the dispatcher thread) may turn the raw reply
        into the Future's result; by default the decoded content is the result.
        """
        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        msgid = new_msgid()
        frames = self.protocol.encode(self.sender, "", content, msgid, serializer)
        self._async_pending[msgid] = (fut, on_reply or (lambda f: self.protocol.decode(f).content))

        def send() -> None:
            sock = self._async_sock(endpoint)
            try:
                send_frames(sock, [b""] + frames, zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                entry = self._async_pending.pop(msgid, None)
                if entry is not None:
                    error = PizcoError(f"cannot send to {endpoint}: {exc}")
                    dispatcher.post(lambda: _fail(entry[0], error))

        self._io.submit(send)
        return fut

    def forget_async(self, fut: concurrent.futures.Future) -> None:
        """Stop waiting for the reply of a non-blocking request (it will be discarded)."""
        for key, (f, _) in list(self._async_pending.items()):
            if f is fut:
                self._async_pending.pop(key, None)

    def _async_sock(self, endpoint: str) -> zmq.Socket:
        sock = self._async_socks.get(endpoint)
        if sock is None:
            sock = iothread.context().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, config.DEFAULT_HWM)
            if self.curve is not None:
                self.curve.configure_client(sock)
            sock.connect(endpoint)
            self._async_socks[endpoint] = sock
            self._io.register(sock, self._on_async_readable)
        return sock

    def _on_async_readable(self, sock: zmq.Socket) -> None:
        for _ in range(1000):
            try:
                frames = recv_frames(sock, zmq.NOBLOCK, 6)
            except zmq.Again:
                return
            if len(frames) < 6 or frames[0] != b"":
                continue
            try:
                msgid = frames[4].decode("utf-8")
            except UnicodeDecodeError:
                continue
            entry = self._async_pending.pop(msgid, None)
            if entry is None:
                continue
            fut, convert = entry
            body = frames[1:]
            dispatcher.post(lambda fut=fut, convert=convert, body=body: _resolve(fut, convert, body))

    # ------------------------------------------------------------------ subscriptions (I/O thread)
    def _ensure_sub(self) -> zmq.Socket:
        sock = self._sub_sock
        if sock is None:
            sock = iothread.context().socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, config.DEFAULT_HWM)
            sock.setsockopt(zmq.MAXMSGSIZE, config.max_message_size())
            if self.curve is not None:
                self.curve.configure_client(sock)
            self._sub_sock = sock
            self._io.register(sock, self._on_sub_readable)
        return sock

    def _sub_connect(self, pub_endpoint: str) -> None:
        sock = self._ensure_sub()
        n = self._sub_connected.get(pub_endpoint, 0)
        if n == 0:
            sock.connect(pub_endpoint)
        self._sub_connected[pub_endpoint] = n + 1

    def _sub_disconnect(self, pub_endpoint: str) -> None:
        n = self._sub_connected.get(pub_endpoint, 0) - 1
        if n <= 0:
            self._sub_connected.pop(pub_endpoint, None)
            self._rebuild_sub()
        else:
            self._sub_connected[pub_endpoint] = n

    def _sub_replace(self, old: str, new: str) -> None:
        """Move this agent's subscriptions from PUB endpoint ``old`` to ``new`` on a fresh socket."""
        n = self._sub_connected.pop(old, 0)
        self._sub_connected[new] = self._sub_connected.get(new, 0) + max(n, 1)
        self._rebuild_sub()

    def _rebuild_sub(self) -> None:
        """Replace the SUB socket by a fresh one with the same connections and subscriptions.

        libzmq can abort in a SUB socket's fair queue when ``disconnect()`` drops a
        pipe that still holds messages, so endpoints are never disconnected from a
        live SUB: the whole socket is closed (dropping what it held) and rebuilt.
        """
        old = self._sub_sock
        if old is None:
            return
        self._io.unregister(old, close=False)
        old.close(linger=0)
        self._sub_sock = None
        if not self._sub_connected and not self._subs:
            return
        sock = self._ensure_sub()
        for endpoint in self._sub_connected:
            sock.connect(endpoint)
        for sub in self._subs.values():
            sock.setsockopt(zmq.SUBSCRIBE, sub.prefix)

    def _add_sub(self, sender: str, topic: str, sink: Callable[[Envelope, List[bytes]], None]) -> None:
        sub = _Subscription(sender, topic, sink)
        self._subs[(sender, topic)] = sub
        self._ensure_sub().setsockopt(zmq.SUBSCRIBE, sub.prefix)

    def _remove_sub(self, sender: str, topic: str) -> None:
        sub = self._subs.pop((sender, topic), None)
        if sub is not None and self._sub_sock is not None:
            self._sub_sock.setsockopt(zmq.UNSUBSCRIBE, sub.prefix)

    def _on_sub_readable(self, sock: zmq.Socket) -> None:
        with held_schedules():  # one batch per target thread for what is readable now
            self._drain_sub(sock)

    def _drain_sub(self, sock: zmq.Socket) -> None:
        check = self.protocol.check
        subs = self._subs
        for _ in range(2000):
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

    def _request_ack(self, sender: str, timeout: float) -> bool:
        """Wait until the publisher has seen every subscription made so far (bounded)."""
        token = f"{ACK_PREFIX}{new_msgid()}"
        event = threading.Event()

        def sink(env: Envelope, frames: List[bytes]) -> None:
            event.set()
            self._remove_sub(sender, token)

        self._io.submit(lambda: self._add_sub(sender, token, sink))
        ok = event.wait(timeout)
        if not ok:
            self._io.submit(lambda: self._remove_sub(sender, token))
        return ok

    def subscribe(self, rep_endpoint: str, topic: str, callback: Optional[Callable[..., Any]] = None,
                  pub_endpoint: Optional[str] = None) -> None:
        """Receive notifications on ``topic`` from the agent at ``rep_endpoint``.

        ``callback(sender, topic, content, msgid)`` (default ``on_notification``) runs
        on the subscribing thread's Qt loop if it has one, else on the dispatcher.
        """
        sender, pub, ack = rep_endpoint, pub_endpoint, False
        if pub is None:
            info = self.request(rep_endpoint, "info")
            sender = info.get("rep_endpoint", rep_endpoint)
            pub = connectable(info["pub_endpoint"], rep_endpoint)
            ack = "ack" in info.get("capabilities", ())
        target = current_target()
        cb = callback or self.on_notification
        sink = self._delivering_sink(target, cb)
        self._io.call(lambda: (self._sub_connect(pub), self._add_sub(sender, topic, sink)))
        self._sub_pub = getattr(self, "_sub_pub", {})
        self._sub_pub[(rep_endpoint, topic)] = (sender, pub)
        if ack:
            self._request_ack(sender, config.timeout())

    def _delivering_sink(self, target: Target, cb: Callable[..., Any]) -> Callable[[Envelope, List[bytes]], None]:
        loads = self.protocol.loads

        def sink(env: Envelope, frames: List[bytes]) -> None:
            def deliver() -> None:
                content = loads(env.serializer, frames[2], frames[5:])
                cb(env.sender, env.topic, content, env.msgid)
            target.post(deliver)
        return sink

    def unsubscribe(self, rep_endpoint: str, topic: str, pub_endpoint: Optional[str] = None) -> None:
        """Stop receiving ``topic`` from the agent at ``rep_endpoint``."""
        sender, pub = getattr(self, "_sub_pub", {}).pop((rep_endpoint, topic), (rep_endpoint, pub_endpoint))
        self._io.call(lambda: (self._remove_sub(sender, topic), pub and self._sub_disconnect(pub)))

    # ------------------------------------------------------------------ stopping
    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` has been called."""
        return self._stopped

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving and close every socket (idempotent; returns within ``timeout``).

        If a remote 'stop' request is being carried out, this waits for it to end.
        """
        with self._stop_lock:
            already = self._stopped
            self._stopped = True
        if already:
            stopper = self._stopper
            if stopper is not None and stopper is not threading.current_thread():
                stopper.join(timeout)
            return
        deadline = time.monotonic() + timeout
        self._before_stop()
        io = self._io
        try:
            io.call(self._close_io_sockets, timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            logger.debug("closing I/O sockets", exc_info=True)
        worker = self._worker
        if worker is not None:
            self._worker_running = False
            self._worker_submit(lambda: None)
            if threading.current_thread() is not worker:
                worker.join(max(0.05, deadline - time.monotonic()))
                if worker.is_alive():
                    logger.warning("the server thread of %s is still inside user code; "
                                   "left running as a daemon, its late reply will be discarded",
                                   self.rep_endpoint)
        for ref in self._all_channels:
            ch = ref()
            if ch is not None:
                ch.close()
        self._all_channels.clear()
        for fut, _ in list(self._async_pending.values()):
            fut.cancel()
        self._async_pending.clear()
        if self._zap_domain is not None:
            unregister_curve_server(self._zap_domain)
        _live_agents.discard(self)
        iothread.release()

    def _before_stop(self) -> None:
        """Hook: runs first in stop() (unregister, cancel futures...)."""

    def _close_io_sockets(self) -> None:
        self._flush_publications()
        io = self._io
        for sock in [self._xpub, self._sub_sock, *self._async_socks.values()]:
            if sock is not None:
                io.unregister(sock)
        self._xpub = None
        self._sub_sock = None
        self._async_socks.clear()
        self._subs.clear()


def _resolve(fut: concurrent.futures.Future, convert: Callable[[List[bytes]], Any], frames: List[bytes]) -> None:
    if fut.done():
        return
    try:
        result = convert(frames)
    except BaseException as exc:
        _fail(fut, exc)
        return
    if isinstance(result, concurrent.futures.Future) and result is not fut:
        # chained: the reply registered a server-side future
        def copy(src: concurrent.futures.Future) -> None:
            if fut.done():
                return
            try:
                if src.cancelled():
                    fut.cancel()
                elif src.exception() is not None:
                    fut.set_exception(src.exception())
                else:
                    fut.set_result(src.result())
            except concurrent.futures.InvalidStateError:
                pass
        result.add_done_callback(copy)
        return
    try:
        fut.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


def _fail(fut: concurrent.futures.Future, exc: BaseException) -> None:
    try:
        fut.set_exception(exc)
    except concurrent.futures.InvalidStateError:
        pass


def stop_all_agents() -> None:
    """Stop every live agent (exit hook)."""
    for agent in list(_live_agents):
        try:
            agent.stop(timeout=1.0)
        except Exception:
            logger.debug("stopping an agent at exit", exc_info=True)


import atexit as _atexit  # noqa: E402  (registered after the I/O thread's hook, so it runs first)

_atexit.register(stop_all_agents)
