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
import itertools
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
from ._frames import readable, recv_frames, send_frames
from .errors import PizcoError, ProtocolError, RemoteTimeout
from .protocol import Envelope, Protocol, header
from .security import CurveChannel, CurveConfig, check_bind_allowed, register_curve_server, unregister_curve_server

logger = logging.getLogger(__name__)

__all__ = ["Agent", "CAPABILITIES", "ACK_PREFIX", "HEARTBEAT_TOPIC", "FUTURE_TOPIC"]

#: What a pizco_qt server adds to the original protocol (advertised by 'info').
CAPABILITIES = ["heartbeat", "ack", "cancel", "oob", "describe", "getmany"]
ACK_PREFIX = "__ack__"
HEARTBEAT_TOPIC = "__heartbeat__"
FUTURE_TOPIC = "__future__"

_ids = itertools.count(1)
_id_prefix = uuid.uuid4().hex[:12]
_live_agents: "weakref.WeakSet[Agent]" = weakref.WeakSet()


def new_msgid() -> str:
    """A message id unique to this process run (cheaper than a uuid per call)."""
    return f"{_id_prefix}-{next(_ids)}"


def _bindable(endpoint: str) -> str:
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        return endpoint[:-2] + ":*"
    return endpoint


def _resolved(requested: str, sock: zmq.Socket) -> str:
    """The endpoint as bound: port 0 resolved as ZMQ reports it, '*' kept."""
    if requested.startswith("tcp://") and (requested.endswith(":0") or requested.endswith(":*")):
        last = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return requested.rsplit(":", 1)[0] + ":" + last.rsplit(":", 1)[1]
    return requested


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

    def roundtrip(self, frames: List[Any], msgid: bytes, timeout: float, action: str) -> List[Any]:
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
                send_frames(sock, [b""] + frames)
            except zmq.Again:
                raise RemoteTimeout(action, self.endpoint, timeout) from None
            while True:
                try:
                    reply = recv_frames(sock)
                except zmq.Again:
                    raise RemoteTimeout(action, self.endpoint, timeout) from None
                if len(reply) >= 5 and reply[0] == b"" and reply[4] == msgid:
                    return reply[1:]
                # a late reply to an earlier call that timed out: drop it
                logger.debug("dropping a stale reply from %s", self.endpoint)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RemoteTimeout(action, self.endpoint, timeout)
                sock.setsockopt(zmq.RCVTIMEO, max(1, int(remaining * 1000)))
                self.timeout_ms = -1

    def close(self) -> None:
        if self.lock.acquire(timeout=0.5):
            try:
                if not self.closed:
                    self.closed = True
                    self.sock.close(linger=0)
            finally:
                self.lock.release()
        else:  # the owner is inside a call (bounded by its timeout): close it once that ends
            self.closed = True
            threading.Thread(target=self._close_when_free, name="pizco-closer", daemon=True).start()

    def _close_when_free(self) -> None:
        if self.lock.acquire(timeout=3600):
            try:
                self.sock.close(linger=0)
            finally:
                self.lock.release()


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


class Agent:
    """Sends and serves requests, publishes and subscribes to notifications.

    Parameters
    ----------
    rep_endpoint, pub_endpoint : str
        Endpoints to bind; port 0 picks a free port (``.rep_endpoint`` /
        ``.pub_endpoint`` give the bound ones). Any ZMQ transport works.
    protocol : Protocol, optional
        Key and serializer; default from ``PZC_KEY`` and ``PZC_SER``.
    allow_insecure : bool
        Allow binding a non-loopback address with pickle and no key.
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

    # ------------------------------------------------------------------ binding
    def _secured(self) -> bool:
        return self.curve is not None

    def _bind(self, rep: str, pub: str, allow_insecure: bool) -> None:
        for ep in (rep, pub):
            check_bind_allowed(ep, self.protocol, self._secured(), allow_insecure)
        if self.curve is not None:
            self._zap_domain = register_curve_server(self.curve, iothread.context())
        self._pub_requested = pub
        self._xpub_counts = {}
        self._io.call(self._open_xpub, timeout=10)
        ready = threading.Event()
        result: Dict[str, Any] = {}
        self._worker_wake = _socket.socketpair()
        for s in self._worker_wake:
            s.setblocking(False)
        self._worker_running = True
        self._worker = threading.Thread(
            target=self._worker_main, args=(rep, ready, result), name=f"pizco-server {rep}", daemon=True
        )
        self._worker.start()
        if not ready.wait(10):
            raise PizcoError(f"the server thread for {rep} did not start within 10 s")
        if "error" in result:
            raise PizcoError(f"cannot bind {rep}: {result['error']}") from result["error"]
        self.rep_endpoint = result["endpoint"]
        self.sender = self.rep_endpoint
        self._io.call_later(0, self._heartbeat_tick)

    def _configure_server_socket(self, sock: zmq.Socket) -> None:
        """Hook for subclasses (e.g. CURVE); runs on the socket's owner thread."""
        sock.setsockopt(zmq.MAXMSGSIZE, config.max_message_size())
        if self.curve is not None and self._zap_domain is not None:
            self.curve.configure_server(sock, self._zap_domain)

    def _open_xpub(self) -> None:
        sock = iothread.context().socket(zmq.XPUB)
        try:
            sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        except (AttributeError, zmq.ZMQError):
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.SNDHWM, config.DEFAULT_HWM)
        sock.setsockopt(zmq.RCVHWM, config.DEFAULT_HWM)
        self._configure_server_socket(sock)
        try:
            sock.bind(_bindable(self._pub_requested))
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise PizcoError(f"cannot bind {self._pub_requested}: {exc}") from exc
        self.pub_endpoint = _resolved(self._pub_requested, sock)
        self._xpub = sock
        self._io.register(sock, self._on_xpub_readable)

    # ------------------------------------------------------------------ worker thread
    def _worker_main(self, rep: str, ready: threading.Event, result: Dict[str, Any]) -> None:
        ctx = iothread.context()
        try:
            router = ctx.socket(zmq.ROUTER)
            router.setsockopt(zmq.RCVHWM, config.DEFAULT_HWM)
            self._configure_server_socket(router)
            try:
                router.bind(_bindable(rep))
            except zmq.ZMQError as exc:
                router.close(linger=0)
                raise PizcoError(f"{exc} (is another server using {rep}?)") from exc
            result["endpoint"] = _resolved(rep, router)
        except BaseException as exc:
            result["error"] = exc
            for s in self._worker_wake or ():
                s.close()
            ready.set()
            return
        wake = self._open_wake(router)
        ready.set()
        wake_r = self._worker_wake[0]
        wake_fd = wake_r.fileno()
        items = [(router, zmq.POLLIN), (wake_fd, zmq.POLLIN)]
        poll = zmq.zmq_poll
        cmds = self._worker_cmds
        try:
            if wake is not None:
                self._serve_blocking(router, wake)
            while self._worker_running and wake is None:
                try:
                    events = poll(items, 1000)
                except zmq.ZMQError:
                    break
                woken = False
                for item, _ in events:
                    if item is not router:
                        woken = True
                        continue
                    for _ in range(256):
                        try:
                            frames = recv_frames(router, zmq.NOBLOCK, 7)
                        except zmq.Again:
                            break
                        self._handle_raw_request(router, frames)
                        if not self._worker_running or not readable(router):
                            break
                if cmds or woken:
                    try:
                        while wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    while cmds:
                        cmd = cmds.popleft()
                        try:
                            cmd()
                        except Exception:
                            report_exception("a server command")
        finally:
            if wake is not None:
                with self._wake_lock:
                    self._wake_sock = None
                wake.close(linger=0)
            router.close(linger=config.LINGER_MS)
            for s in self._worker_wake or ():
                s.close()

    def _open_wake(self, router: zmq.Socket) -> Optional[zmq.Socket]:
        """An inproc DEALER into the router that wakes the worker (worker thread).

        With it the worker blocks in a receive on the router alone, which answers
        a request sooner than polling the router and a wake-up descriptor. Only
        for unsecured routers (a security mechanism would apply to it too).
        """
        try:
            if router.getsockopt(zmq.MECHANISM) != zmq.NULL or router.getsockopt(zmq.ZAP_DOMAIN):
                return None
            endpoint = f"inproc://pizco-wake-{_id_prefix}-{id(self):x}"
            router.bind(endpoint)
            wake = iothread.context().socket(zmq.DEALER)
            wake.setsockopt(zmq.LINGER, 0)
            wake.setsockopt(zmq.ROUTING_ID, self._wake_id)
            wake.connect(endpoint)
        except zmq.ZMQError:
            logger.debug("no inproc wake-up for %s", self.rep_endpoint, exc_info=True)
            return None
        with self._wake_lock:
            self._wake_sock = wake
        return wake

    def _serve_blocking(self, router: zmq.Socket, wake: zmq.Socket) -> None:
        """The worker loop: requests, and commands announced through ``wake``."""
        router.setsockopt(zmq.RCVTIMEO, 1000)
        cmds = self._worker_cmds
        wake_id = self._wake_id
        while self._worker_running:
            try:
                frames = recv_frames(router, 0, 7)
            except zmq.Again:
                frames = None
            except zmq.ZMQError:
                break
            if frames is not None and not (frames[0] == wake_id and len(frames) == 2):
                self._handle_raw_request(router, frames)
            while cmds:
                cmd = cmds.popleft()
                try:
                    cmd()
                except Exception:
                    report_exception("a server command")

    def _worker_submit(self, cmd: Callable[[], None]) -> None:
        self._worker_cmds.append(cmd)
        if self._wake_sock is not None:
            with self._wake_lock:
                sock = self._wake_sock
                if sock is not None:
                    try:
                        send_frames(sock, [b"w"], zmq.NOBLOCK)
                    except zmq.ZMQError:
                        pass  # wake-ups pending already: the worker will run this too
                    return
        wake = self._worker_wake
        if wake is not None:
            try:
                wake[1].send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def _handle_raw_request(self, router: zmq.Socket, frames: List[bytes]) -> None:
        try:
            split = frames.index(b"")
        except ValueError:
            logger.warning("dropping a request without an envelope delimiter (%d frames)", len(frames))
            return
        route, body = frames[: split + 1], frames[split + 1:]
        protocol = self.protocol
        try:
            env = protocol.check(body)
        except ProtocolError as exc:
            self._reject(router, route, body, exc)
            return
        try:
            content = protocol.loads(env.serializer, body[2], body[5:])
        except ProtocolError as exc:
            self._reject(router, route, body, exc, env)
            return
        self._worker_busy = True
        try:
            reply = self._serve_request(env, content)
        except Exception:
            report_exception(f"on_request of {self.rep_endpoint}")
            self._worker_busy = False
            return
        self._worker_busy = False
        self._send_reply(router, route, env, reply)

    def _serve_request(self, env: Envelope, content: Any) -> Any:
        """Produce the reply content (overridden by Server to add thread affinity)."""
        return self.on_request(env.sender, env.topic, content, env.msgid)

    def _send_reply(self, router: zmq.Socket, route: List[bytes], env: Envelope, reply: Any) -> None:
        ser = env.serializer
        try:
            frames = self.protocol.encode(self.sender, env.topic, reply, env.msgid, ser)
        except Exception as exc:  # an unserializable return value
            logger.warning("cannot serialize the reply to %s: %s", env.msgid, exc)
            reply = self._serialization_failure(reply, exc)
            try:
                frames = self.protocol.encode(self.sender, env.topic, reply, env.msgid, ser)
            except Exception:  # the serializer itself is unusable: no reply possible
                logger.warning("cannot answer %s with serializer %r", env.msgid, ser)
                return
        try:
            send_frames(router, route + frames)
        except zmq.ZMQError as exc:
            logger.warning("cannot send the reply to %s: %s", env.msgid, exc)

    def _serialization_failure(self, reply: Any, exc: Exception) -> Any:
        return ("PSMessage", "raise", (TypeError(f"cannot serialize the reply: {exc}"), []))

    _reject_times: Dict[str, float] = {}

    def _reject(self, router: zmq.Socket, route: List[bytes], body: List[bytes],
                exc: ProtocolError, env: Optional[Envelope] = None) -> None:
        reason = str(exc)
        now = time.monotonic()
        if now - self._reject_times.get(reason, 0.0) > 1.0:  # rate-limited
            if len(self._reject_times) > 256:  # reasons quote hostile input: keep it bounded
                self._reject_times.clear()
            self._reject_times[reason] = now
            logger.warning("rejected a request at %s: %s", self.rep_endpoint, reason)
        msgid = env.msgid if env is not None else ""
        ser = env.serializer if env is not None else "pickle"
        if env is None and len(body) > 3:
            try:
                msgid = bytes(body[3]).decode("utf-8")
                cand = bytes(body[1]).decode("ascii")
                if cand in ("pickle", "json") or (cand.startswith("pickle") and cand[6:].isdigit()):
                    ser = cand
            except UnicodeDecodeError:
                pass
        error = ValueError(reason)
        try:
            try:
                frames = self.protocol.encode(self.sender, "", ("PSMessage", "raise", (error, [])), msgid, ser)
            except Exception:  # e.g. 'pickle99': answer in plain pickle
                frames = self.protocol.encode(self.sender, "", ("PSMessage", "raise", (error, [])), msgid, "pickle")
            router.send_multipart(route + frames, copy=False)
        except Exception:
            logger.debug("cannot answer a rejected request", exc_info=True)

    # ------------------------------------------------------------------ publishing (I/O thread)
    def publish(self, topic: str, content: Any) -> None:
        """Publish ``content`` on ``topic`` (any thread; never blocks)."""
        frames = self.protocol.encode(self.sender, topic, content, new_msgid())
        self._publish_frames(frames)

    def _publish_frames(self, frames: List[Any]) -> None:
        self._pubq.append(frames)
        if not self._pub_scheduled:
            self._pub_scheduled = True
            self._io.submit(self._flush_publications)

    def _flush_publications(self) -> None:
        self._pub_scheduled = False
        queue = self._pubq
        sock = self._xpub
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

    def _heartbeat_tick(self) -> None:
        if self._xpub is None or self._stopped:
            return
        if self._xpub_counts.get(HEARTBEAT_TOPIC):
            self._publish_frames(self.protocol.encode(self.sender, HEARTBEAT_TOPIC,
                                                      {"pub_endpoint": self.pub_endpoint}, new_msgid()))
        self._io.call_later(config.heartbeat(), self._heartbeat_tick)

    def _on_xpub_readable(self, sock: zmq.Socket) -> None:
        prefix = header(self.sender, "")
        plen = len(prefix)
        events: List[Tuple[str, bool]] = []
        acks: List[str] = []
        for _ in range(1000):
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not msg or msg[0] not in (0, 1):
                logger.warning("ignoring a malformed message on %s", self.pub_endpoint)
                continue
            if not msg.startswith(prefix, 1):
                continue  # someone else's topic or a bare prefix
            try:
                topic = msg[1 + plen:].decode("utf-8")
            except UnicodeDecodeError:
                logger.warning("ignoring a subscription with a bad utf-8 topic on %s", self.pub_endpoint)
                continue
            if "+" in topic:
                continue
            subscribed = msg[0] == 1
            if topic.startswith(ACK_PREFIX):
                if subscribed:
                    acks.append(topic)
                continue
            events.append((topic, subscribed))
        for topic, subscribed in events:
            count = self._xpub_counts.get(topic, 0) + (1 if subscribed else -1)
            count = max(count, 0)
            self._xpub_counts[topic] = count
            if topic.startswith("__"):
                self._handled_counts[topic] = count
                continue
            self._worker_submit(self._make_sub_event(topic, count, subscribed))
        for topic in acks:
            # after the subscriptions it follows have been handled by the worker
            self._worker_submit(lambda t=topic: self._io.submit(lambda: self._send_ack(t)))

    def _send_ack(self, topic: str) -> None:
        self._publish_frames(self.protocol.encode(self.sender, topic, None, new_msgid()))

    def _make_sub_event(self, topic: str, count: int, subscribed: bool) -> Callable[[], None]:
        def event() -> None:
            try:
                if subscribed:
                    self.on_subscribe(topic, count)
                else:
                    self.on_unsubscribe(topic, count)
            finally:
                self._handled_counts[topic] = count
        return event

    def subscriber_count(self, topic: str) -> int:
        """How many SUB sockets subscribe to ``topic`` of this agent.

        The count changes after ``on_subscribe``/``on_unsubscribe`` has run, so once it
        shows a subscriber, the server is connected to the served signal.
        """
        return self._handled_counts.get(topic, 0)

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
        threading.Thread(target=self.stop, name="pizco-stopper", daemon=True).start()

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
                       action: str = "request", serializer: Optional[str] = None) -> List[bytes]:
        """Send a request and return the raw (checked, not decoded) reply frames."""
        timeout = config.timeout() if timeout is None else timeout
        msgid = new_msgid()
        frames = self.protocol.encode(self.sender, "", content, msgid, serializer)
        return self._channel(endpoint).roundtrip(frames, frames[3], timeout, action)

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
        """Stop serving and close every socket (idempotent; returns within ``timeout``)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
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
