"""The answering part: a ROUTER socket and the worker thread that answers its requests.

The worker thread owns the ROUTER. It checks each request's envelope and
signature, decodes the content, asks its ``answer(envelope, content)`` function
for the reply content and sends the reply (one compact frame to a compact
request when the reply fits, else the five standard frames). Commands submitted
from other threads (subscription events, a remote 'stop', the registry's
sweep) run on the worker between requests, in arrival order.

Thread affinity: ``submit`` and ``stop`` from any thread; the loop on the
worker thread.
"""
from __future__ import annotations

import collections
import logging
import socket as _socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

import zmq

from . import iothread
from .config import Settings
from .delivery import report_exception
from .endpoints import bindable, resolved
from .errors import AuthenticationError, BindError, PizcoError, ProtocolError, refusal, signature_rejection
from .protocol import COMPACT, Envelope, Protocol, _id_prefix, serializer_known, unpack_compact
from .security import ReplayCache
from .zmq_io import readable, recv_routed, recv_routed_user, send_frames, send_routed

logger = logging.getLogger(__name__)

__all__ = ["Answerer"]

class Answerer:
    """Owns the ROUTER socket and the worker thread that answers requests.

    Parameters
    ----------
    protocol : Protocol
        Checks requests and encodes replies.
    answer : callable
        ``answer(envelope, content)`` returns the reply content (worker thread).
    configure : callable
        ``configure(sock)`` applies socket options (size limit, CURVE) before bind.
    settings : Settings
        Queue length, linger, start deadline, batch size, log rate.
    """

    def __init__(self, protocol: Protocol, answer: Callable[[Envelope, Any], Any],
                 configure: Callable[[zmq.Socket], None], settings: Settings) -> None:
        self.protocol = protocol
        self.settings = settings
        self.endpoint = ""
        #: The identity put in each reply's header (the bound endpoint once bound).
        self.sender = ""
        self._answer = answer
        self._configure = configure
        self._thread: Optional[threading.Thread] = None
        self._cmds: "collections.deque[Callable[[], None]]" = collections.deque()
        self._wake_pair: Optional[Any] = None
        self._wake_sock: Optional[zmq.Socket] = None
        self._wake_lock = threading.Lock()
        self._wake_id = b"pizco-wake-" + uuid.uuid4().bytes
        self._running = False
        self._busy = False
        self._reject_times: Dict[str, float] = {}
        #: Signed requests answered in the last 10 minutes (a keyed server answers each once).
        self._replays = ReplayCache(self.settings.replay_window, self.settings.replay_cache_size)
        self._replay_logged = 0.0
        #: Verifies requests signed with the observer key (they are then an observer's), or None.
        self.observer_protocol: Optional[Protocol] = None
        #: ``role_of_key(z85 key)`` for CURVE roles (requests then carry their client's key), or None.
        self.role_of_key: Optional[Callable[[Optional[str]], Optional[str]]] = None
        #: The role of the request being answered: 'observer', 'controller', or None when the
        #: server has no roles (worker thread; read by ``answer``).
        self.request_role: Optional[str] = None

    @property
    def running(self) -> bool:
        """Whether the worker serves (False once ``stop`` began)."""
        return self._running

    @property
    def busy(self) -> bool:
        """Whether the worker is inside ``answer`` right now."""
        return self._busy

    def alive(self) -> bool:
        """Whether the worker thread runs and serves."""
        worker = self._thread
        return worker is not None and worker.is_alive() and self._running

    def is_worker(self) -> bool:
        """Whether the calling thread is the worker."""
        return self._thread is not None and threading.current_thread() is self._thread

    # ------------------------------------------------------------------ binding
    def bind(self, rep: str) -> str:
        """Bind ``rep`` and start the worker; returns the bound endpoint.

        Raises
        ------
        BindError
            If the endpoint cannot be bound or the worker does not start.
        """
        ready = threading.Event()
        result: Dict[str, Any] = {}
        self._wake_pair = _socket.socketpair()
        for s in self._wake_pair:
            s.setblocking(False)
        self._running = True
        self._thread = threading.Thread(target=self._main, args=(rep, ready, result),
                                        name=f"pizco-server {rep}", daemon=True)
        self._thread.start()
        limit = self.settings.thread_start_timeout
        if not ready.wait(limit):
            raise BindError(f"the server thread for {rep} did not start within {limit:g} s")
        if "error" in result:
            raise BindError(f"cannot bind {rep}: {result['error']}") from result["error"]
        self.endpoint = self.sender = result["endpoint"]
        return self.endpoint

    # ------------------------------------------------------------------ worker thread
    def _main(self, rep: str, ready: threading.Event, result: Dict[str, Any]) -> None:
        ctx = iothread.context()
        try:
            router = ctx.socket(zmq.ROUTER)
            router.setsockopt(zmq.RCVHWM, self.settings.receive_hwm)
            self._configure(router)
            try:
                router.bind(bindable(rep))
            except zmq.ZMQError as exc:
                router.close(linger=0)
                raise BindError(f"{exc} (is another server using {rep}?)") from exc
            result["endpoint"] = resolved(rep, router.getsockopt_string(zmq.LAST_ENDPOINT))
        except BaseException as exc:
            result["error"] = exc
            for s in self._wake_pair or ():
                s.close()
            ready.set()
            return
        wake = self._open_wake(router)
        ready.set()
        try:
            if wake is not None:
                self._serve_blocking(router, wake)
            else:
                self._serve_polling(router)
        finally:
            if wake is not None:
                with self._wake_lock:
                    self._wake_sock = None
                wake.close(linger=0)
            router.close(linger=self.settings.linger_ms)
            for s in self._wake_pair or ():
                s.close()

    def _serve_polling(self, router: zmq.Socket) -> None:
        """The worker loop for secured routers: poll the router and a wake-up descriptor."""
        wake_r = self._wake_pair[0]
        items = [(router, zmq.POLLIN), (wake_r.fileno(), zmq.POLLIN)]
        poll = zmq.zmq_poll
        cmds = self._cmds
        period_ms = max(1, round(self.settings.worker_poll_interval * 1000))
        while self._running:
            try:
                events = poll(items, period_ms)
            except zmq.ZMQError:
                break
            woken = False
            for item, _ in events:
                if item is not router:
                    woken = True
                    continue
                for _ in range(self.settings.request_batch):
                    try:
                        if self.role_of_key is not None:
                            frames, user = recv_routed_user(router, zmq.NOBLOCK)
                        else:
                            frames, user = recv_routed(router, zmq.NOBLOCK), None
                    except zmq.Again:
                        break
                    self._handle(router, frames, user)
                    if not self._running or not readable(router):
                        break
            if cmds or woken:
                try:
                    while wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
                self._run_commands()

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
            logger.debug("no inproc wake-up for %s", self.endpoint, exc_info=True)
            return None
        with self._wake_lock:
            self._wake_sock = wake
        return wake

    def _serve_blocking(self, router: zmq.Socket, wake: zmq.Socket) -> None:
        """The worker loop: requests, and commands announced through ``wake``."""
        router.setsockopt(zmq.RCVTIMEO, max(1, round(self.settings.worker_poll_interval * 1000)))
        cmds = self._cmds
        wake_id = self._wake_id
        while self._running:
            try:
                frames = recv_routed(router)
            except zmq.Again:
                frames = None
            except zmq.ZMQError:
                break
            if frames is not None and not (frames[0] == wake_id and len(frames) == 2):
                self._handle(router, frames)
            if cmds:
                self._run_commands()

    def _run_commands(self) -> None:
        """Run the commands submitted to the worker (worker thread)."""
        cmds = self._cmds
        while cmds:
            cmd = cmds.popleft()
            try:
                cmd()
            except BaseException:  # a hook raising SystemExit must not end the worker
                report_exception("a server command")

    def submit(self, cmd: Callable[[], None]) -> None:
        """Run ``cmd`` on the worker thread, after what is queued (any thread; never blocks)."""
        self._cmds.append(cmd)
        if self._wake_sock is not None:
            with self._wake_lock:
                sock = self._wake_sock
                if sock is not None:
                    try:
                        send_frames(sock, [b"w"], zmq.NOBLOCK)
                    except zmq.ZMQError:
                        pass  # wake-ups pending already: the worker will run this too
                    return
        pair = self._wake_pair
        if pair is not None:
            try:
                pair[1].send(b"\0")
            except (BlockingIOError, OSError):
                pass

    # ------------------------------------------------------------------ one request
    def _handle(self, router: zmq.Socket, frames: List[Any], user: Optional[str] = None) -> None:
        """Check, decode, answer one request (``user``: its CURVE client's z85 key, for roles)."""
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
        try:
            env, protocol, self.request_role = self._check(body, user)
        except ProtocolError as exc:
            self._reject(router, route + [b""] if compact else route, body, exc)
            return
        if protocol.hmac_key and self._replays.check_and_add(body[4], env.msgid):
            self._refuse_replay(router, route, env, compact, protocol)
            return
        try:
            content = protocol.loads(env.serializer, body[2], body[5:])
        except ProtocolError as exc:
            self._reject(router, route + [b""] if compact else route, body, exc, env)
            return
        self._busy = True
        try:
            reply = self._answer(env, content)
        except BaseException:  # SystemExit too: the worker thread must keep serving
            report_exception(f"on_request of {self.endpoint}")
            self._busy = False
            return
        self._busy = False
        self._send_reply(router, route, env, reply, compact, protocol)

    def _check(self, body: List[Any], user: Optional[str]) -> "tuple[Envelope, Protocol, Optional[str]]":
        """``(envelope, the protocol that verified it, role or None)``; ProtocolError if no key did.

        A request signed with the observer key is an observer's and is answered
        with that key; with CURVE roles, the role comes from the client's key.
        """
        try:
            env = self.protocol.check(body)
        except ProtocolError:
            observer = self.observer_protocol
            if observer is None:
                raise
            try:
                return observer.check(body), observer, "observer"
            except ProtocolError:
                pass
            raise
        role_of_key = self.role_of_key
        if role_of_key is not None:
            return env, self.protocol, role_of_key(user)
        return env, self.protocol, ("controller" if self.observer_protocol is not None else None)

    def _send_reply(self, router: zmq.Socket, route: List[bytes], env: Envelope, reply: Any,
                    compact: bool = False, protocol: Optional[Protocol] = None) -> None:
        """Send the reply: compact to a compact request when it fits one frame, else the five frames.

        ``route`` is the request's routing frames: with its empty delimiter for a
        standard request, without one for a compact request.
        """
        ser = env.serializer
        protocol = protocol or self.protocol
        encode = protocol.encode_compact if compact else protocol.encode
        try:
            frames = encode(self.sender, env.topic, reply, env.msgid, ser)
        except BaseException as exc:  # an unserializable return value (its __reduce__ may raise anything)
            logger.warning("cannot serialize the reply to %s: %s", env.msgid, exc)
            reply = _serialization_failure(exc)
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

    def _refuse_replay(self, router: zmq.Socket, route: List[bytes], env: Envelope, compact: bool,
                       protocol: Optional[Protocol] = None) -> None:
        """Answer a replayed signed request (never deserialized, nothing runs) with a refusal."""
        from .dispatch import encode_exception

        now = time.monotonic()
        if now - self._replay_logged > self.settings.reject_log_interval:  # rate-limited: replays may be a flood
            self._replay_logged = now
            logger.warning("refused a replayed request %r at %s", env.msgid[:80], self.endpoint)
        exc = refusal("replay", f"message id {env.msgid[:80]!r} was already answered: a replayed request "
                                "is refused (each request must carry a new message id)")
        self._send_reply(router, route, env, ("PSMessage", "raise", encode_exception(exc, env.serializer, [])),
                         compact, protocol)

    def _reject(self, router: zmq.Socket, route: List[bytes], body: List[bytes],
                exc: ProtocolError, env: Optional[Envelope] = None) -> None:
        reason = str(exc)
        now = time.monotonic()
        if now - self._reject_times.get(reason, 0.0) > self.settings.reject_log_interval:  # rate-limited
            if len(self._reject_times) > self.settings.max_reject_reasons:  # reasons quote hostile input: keep it bounded
                self._reject_times.clear()
            self._reject_times[reason] = now
            logger.warning("rejected a request at %s: %s", self.endpoint, reason)
        msgid = env.msgid if env is not None else ""
        ser = env.serializer if env is not None else "pickle"
        if env is None and len(body) > 3:
            try:
                msgid = bytes(body[3]).decode("utf-8")
                cand = bytes(body[1]).decode("ascii")
                if serializer_known(cand):
                    ser = cand
            except UnicodeDecodeError:
                pass
        error = signature_rejection(reason) if isinstance(exc, AuthenticationError) else ValueError(reason)
        try:
            try:
                frames = self.protocol.encode(self.sender, "", ("PSMessage", "raise", (error, [])), msgid, ser)
            except Exception:  # e.g. 'pickle99': answer in plain pickle
                frames = self.protocol.encode(self.sender, "", ("PSMessage", "raise", (error, [])), msgid, "pickle")
            router.send_multipart(route + frames, copy=False)
        except Exception:
            logger.debug("cannot answer a rejected request", exc_info=True)

    # ------------------------------------------------------------------ stopping
    def stop(self, timeout: float) -> None:
        """Stop the worker and join it within ``timeout`` (not when called from the worker)."""
        worker = self._thread
        if worker is None:
            return
        self._running = False
        self.submit(lambda: None)
        if threading.current_thread() is not worker:
            worker.join(max(self.settings.poll_interval, timeout))
            if worker.is_alive():
                logger.warning("the server thread of %s is still inside user code; "
                               "left running as a daemon, its late reply will be discarded", self.endpoint)
            else:
                self._drop_owner()

    def _drop_owner(self) -> None:
        """Forget the owner's functions once the worker ended (no cycle keeps the owner alive)."""
        self._answer = _no_answer
        self._configure = _no_configure
        self.role_of_key = None
        self._cmds.clear()


def _no_answer(env: Envelope, content: Any) -> Any:
    raise PizcoError("this server is stopped")


def _no_configure(sock: zmq.Socket) -> None:
    raise PizcoError("this server is stopped")


def _serialization_failure(exc: BaseException) -> Any:
    return ("PSMessage", "raise", (TypeError(f"cannot serialize the reply: {exc}"), []))
