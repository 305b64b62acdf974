"""The serving half of an Agent: binding, the worker thread, publishing.

A binding agent owns a ROUTER socket served by its worker thread (which also
runs ``on_request``, ``on_subscribe`` and ``on_unsubscribe`` in arrival order)
and an XPUB socket owned by the I/O thread, which sees every subscribe and
unsubscribe (``XPUB_VERBOSER``), publishes heartbeats and acknowledges the
marker subscriptions that proxies use to know a subscription is active.

Thread affinity: ``publish`` from any thread; the worker loop on the agent's
worker thread; XPUB handling on the I/O thread.
"""
from __future__ import annotations

import logging
import socket as _socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import zmq

from . import config, iothread
from ._frames import readable, recv_routed, send_frames, send_routed
from .delivery import report_exception
from .gate import MAX_TOPIC_BYTES
from .errors import PizcoError, ProtocolError
from .protocol import ACK_PREFIX, COMPACT, HEARTBEAT_TOPIC, Envelope, _id_prefix, header, new_msgid, unpack_compact
from .security import check_bind_allowed, register_curve_server

logger = logging.getLogger(__name__)

__all__ = ["Serving"]


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



def _set_count(counts: Dict[str, int], topic: str, count: int) -> None:
    """Record a topic's subscriber count; a topic at zero is forgotten."""
    if count:
        counts[topic] = count
    else:
        counts.pop(topic, None)


class Serving:
    """Mixin of Agent: everything a binding agent does to serve (see the module docstring)."""

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
        sock.setsockopt(zmq.SNDHWM, config.send_hwm())  # per subscriber: a stalled one cannot grow it
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
            router.setsockopt(zmq.RCVHWM, config.receive_hwm())
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
                            frames = recv_routed(router, zmq.NOBLOCK)
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
                    self._run_commands()
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
                frames = recv_routed(router)
            except zmq.Again:
                frames = None
            except zmq.ZMQError:
                break
            if frames is not None and not (frames[0] == wake_id and len(frames) == 2):
                self._handle_raw_request(router, frames)
            if cmds:
                self._run_commands()

    def _run_commands(self) -> None:
        """Run the commands submitted to the worker (worker thread)."""
        cmds = self._worker_cmds
        while cmds:
            cmd = cmds.popleft()
            try:
                cmd()
            except BaseException:  # a hook raising SystemExit must not end the worker
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

    def _handle_raw_request(self, router: zmq.Socket, frames: List[Any]) -> None:
        if len(frames) == 2 and frames[1][:4] == COMPACT:  # one compact frame from a pizco_qt DEALER
            route = frames[:1]
            try:
                body = unpack_compact(frames[1])
            except ProtocolError as exc:
                self._reject(router, route + [b""], [], exc)
                return
            compact = True
        else:
            try:
                split = frames.index(b"")
            except ValueError:
                logger.warning("dropping a request without an envelope delimiter (%d frames)", len(frames))
                return
            route, body = frames[: split + 1], frames[split + 1:]
            compact = False
        protocol = self.protocol
        try:
            env = protocol.check(body)
        except ProtocolError as exc:
            self._reject(router, route + [b""] if compact else route, body, exc)
            return
        try:
            content = protocol.loads(env.serializer, body[2], body[5:])
        except ProtocolError as exc:
            self._reject(router, route + [b""] if compact else route, body, exc, env)
            return
        self._worker_busy = True
        try:
            reply = self._serve_request(env, content)
        except BaseException:  # SystemExit too: the worker thread must keep serving
            report_exception(f"on_request of {self.rep_endpoint}")
            self._worker_busy = False
            return
        self._worker_busy = False
        self._send_reply(router, route, env, reply, compact)

    def _serve_request(self, env: Envelope, content: Any) -> Any:
        """Produce the reply content (overridden by Server to add thread affinity)."""
        return self.on_request(env.sender, env.topic, content, env.msgid)

    def _send_reply(self, router: zmq.Socket, route: List[bytes], env: Envelope, reply: Any,
                    compact: bool = False) -> None:
        """Send the reply: compact to a compact request when it fits one frame, else the five frames.

        ``route`` is the request's routing frames: with its empty delimiter for a
        standard request, without one for a compact request.
        """
        ser = env.serializer
        encode = self.protocol.encode_compact if compact else self.protocol.encode
        try:
            frames = encode(self.sender, env.topic, reply, env.msgid, ser)
        except BaseException as exc:  # an unserializable return value (its __reduce__ may raise anything)
            logger.warning("cannot serialize the reply to %s: %s", env.msgid, exc)
            reply = self._serialization_failure(reply, exc)
            try:
                frames = encode(self.sender, env.topic, reply, env.msgid, ser)
            except BaseException:  # the serializer itself is unusable: no reply possible
                logger.warning("cannot answer %s with serializer %r", env.msgid, ser)
                return
        try:
            if not compact:
                send_frames(router, route + frames)
            elif type(frames) is bytes:
                send_routed(router, route[0], frames)
            else:
                send_frames(router, route + [b""] + frames)
        except zmq.ZMQError as exc:
            logger.warning("cannot send the reply to %s: %s", env.msgid, exc)

    def _serialization_failure(self, reply: Any, exc: BaseException) -> Any:
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

    def _worker_alive(self) -> bool:
        """Whether the worker thread that answers requests is running."""
        worker = self._worker
        return worker is not None and worker.is_alive() and self._worker_running

    def _heartbeat_tick(self) -> None:
        if self._xpub is None or self._stopped:
            return
        if not self._worker_alive():  # nobody answers requests: proxies must see the server lost
            logger.error("the server thread of %s has ended: heartbeats stop", self.rep_endpoint)
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
            if "+" in topic or len(msg) - 1 - plen > MAX_TOPIC_BYTES:
                continue
            subscribed = msg[0] == 1
            if topic.startswith(ACK_PREFIX):
                if subscribed and len(acks) < 256:
                    acks.append(topic)
                continue
            events.append((topic, subscribed))
        for topic, subscribed in events:
            if topic not in self._xpub_counts and (not subscribed or not self._topic_wanted(topic)):
                continue  # ignored: no counter, nothing runs
            count = max(self._xpub_counts.get(topic, 0) + (1 if subscribed else -1), 0)
            if count:
                self._xpub_counts[topic] = count
            else:
                self._xpub_counts.pop(topic, None)  # counters of a topic nobody wants are deleted
            if topic.startswith("__"):
                _set_count(self._handled_counts, topic, count)
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
                _set_count(self._handled_counts, topic, count)
        return event

    def _topic_wanted(self, topic: str) -> bool:
        """Whether a new subscription to ``topic`` is counted and handed to ``on_subscribe``
        (I/O thread). A plain agent takes every topic; a Server only its signals."""
        return True

    def subscriber_count(self, topic: str) -> int:
        """How many SUB sockets subscribe to ``topic`` of this agent.

        The count changes after ``on_subscribe``/``on_unsubscribe`` has run, so once it
        shows a subscriber, the server is connected to the served signal.
        """
        return self._handled_counts.get(topic, 0)
