"""The requesting part: sends requests and reads their replies.

Synchronous requests go through a DEALER owned by the calling thread (one per
thread and endpoint, no thread hop; a late reply to an earlier call that timed
out is told apart by its message id and dropped). Non-blocking requests go
through DEALERs owned by the I/O thread; their replies resolve Futures on the
dispatcher thread.

Thread affinity: ``request``, ``request_frames``, ``request_async`` and
``forget`` from any thread; the methods marked "I/O thread" only there.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import zmq

from . import forking, iothread, limits, replies
from .config import Settings
from .delivery import dispatcher
from .errors import PizcoError, RemoteTimeout
from .futures import copy_outcome, settle
from .protocol import Protocol, new_msgid
from .security import CurveChannel, CurveConfig
from .zmq_io import close_owned, recv_frames, recv_reply, send_frames, send_one

logger = logging.getLogger(__name__)

__all__ = ["Requester", "Channel"]

class Channel:
    """A DEALER owned by one thread for synchronous requests to one endpoint."""

    __slots__ = ("sock", "lock", "endpoint", "closed", "timeout_ms", "__weakref__")

    #: Whether ``roundtrip`` takes a compact frame too.
    compact = True

    def __init__(self, endpoint: str, max_message: int) -> None:
        sock = iothread.context().socket(zmq.DEALER)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue for a peer that is not there
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, max_message)  # a hostile server cannot flood us
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
        self.channels: Dict[str, Any] = {}

    def __del__(self) -> None:
        for ch in self.channels.values():
            try:
                ch.close()
            except Exception:
                pass


class Requester:
    """Sends requests: synchronous ones on per-thread channels, non-blocking ones on the I/O thread.

    ``sender`` is the identity put in each request's header (the owner sets it).
    """

    def __init__(self, protocol: Protocol, io: Any, curve: Optional[CurveConfig] = None,
                 sender: str = "", settings: Optional[Settings] = None) -> None:
        self.protocol = protocol
        self.settings = settings if settings is not None else Settings.from_environment()
        self.curve = curve
        self.sender = sender
        #: The process that made this part, and what it belongs to (for ``ProxyClosed`` after a fork).
        self.owner_pid = forking.pid
        self.owner = "this client"
        self._io = io
        self._closed = False
        self._local = threading.local()
        self._all_channels: List["weakref.ref[Any]"] = []
        self._async_socks: Dict[str, zmq.Socket] = {}
        self._pending: Dict[str, Tuple[concurrent.futures.Future, Callable[[List[bytes]], Any]]] = {}

    # ------------------------------------------------------------------ synchronous
    def _channel(self, endpoint: str) -> Any:
        if self.owner_pid != forking.pid:  # inherited across os.fork(): refuse at once, never hang
            forking.check_owner(self.owner_pid, self.owner)
        holder = getattr(self._local, "holder", None)
        if holder is None:
            holder = self._local.holder = _ChannelHolder()
        ch = holder.channels.get(endpoint)
        if ch is None or ch.closed:
            if self._closed:
                raise PizcoError(f"this agent is stopped; cannot reach {endpoint}")
            limits.check_headroom(self.settings.fd_per_connection, f"connect to {endpoint}")
            try:
                ch = Channel(endpoint, self.settings.max_message) if self.curve is None or not self.curve.is_client \
                    else CurveChannel(endpoint, self.curve, iothread.context(), self.settings.max_message)
            except (zmq.ZMQError, OSError) as exc:
                raise limits.from_zmq_error(exc, f"connect to {endpoint}") from exc
            holder.channels[endpoint] = ch
            self._all_channels.append(weakref.ref(ch))
        return ch

    def channels(self) -> List[Any]:
        """The live synchronous channels this part opened (any thread's)."""
        return [ch for ch in (ref() for ref in self._all_channels) if ch is not None]

    def request_frames(self, endpoint: str, content: Any, timeout: Optional[float] = None,
                       action: str = "request", serializer: Optional[str] = None,
                       compact: bool = False) -> List[bytes]:
        """Send a request and return the raw (not yet checked nor decoded) reply frames.

        ``compact=True`` (only for servers that advertise the ``compact``
        capability) sends a small request as one compact frame.
        """
        timeout = self.settings.timeout if timeout is None else timeout
        msgid = new_msgid()
        ch = self._channel(endpoint)
        if compact and ch.compact:
            frames = self.protocol.encode_compact(self.sender, "", content, msgid, serializer)
        else:
            frames = self.protocol.encode(self.sender, "", content, msgid, serializer)
        return ch.roundtrip(frames, msgid.encode("utf-8"), timeout, action)

    def request(self, endpoint: str, content: Any, timeout: Optional[float] = None) -> Any:
        """Send ``content`` to ``endpoint`` and return the reply's content."""
        return replies.decode(self.protocol, self.request_frames(endpoint, content, timeout))

    # ------------------------------------------------------------------ non-blocking (I/O thread)
    def request_async(self, endpoint: str, content: Any,
                      on_reply: Optional[Callable[[List[bytes]], Any]] = None,
                      serializer: Optional[str] = None) -> "concurrent.futures.Future[Any]":
        """Send a request without waiting; the Future resolves with the reply content.

        ``on_reply(frames)`` (run on the dispatcher thread) may turn the raw reply
        into the Future's result; by default the decoded content is the result.
        """
        forking.check_owner(self.owner_pid, self.owner)
        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        msgid = new_msgid()
        frames = self.protocol.encode(self.sender, "", content, msgid, serializer)
        protocol = self.protocol
        self._pending[msgid] = (fut, on_reply or (lambda f: replies.decode(protocol, f)))

        def send() -> None:
            sock = self._async_sock(endpoint)
            try:
                send_frames(sock, [b""] + frames, zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                entry = self._pending.pop(msgid, None)
                if entry is not None:
                    error = PizcoError(f"cannot send to {endpoint}: {exc}")
                    dispatcher.post(lambda: settle(entry[0], exc=error))

        self._io.submit(send)
        return fut

    def forget(self, fut: concurrent.futures.Future) -> None:
        """Stop waiting for the reply of a non-blocking request (it will be discarded)."""
        for key, (f, _) in list(self._pending.items()):
            if f is fut:
                self._pending.pop(key, None)

    def _async_sock(self, endpoint: str) -> zmq.Socket:
        sock = self._async_socks.get(endpoint)
        if sock is None:
            sock = iothread.context().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, self.settings.hwm)
            sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message)
            if self.curve is not None:
                self.curve.configure_client(sock)
            sock.connect(endpoint)
            self._async_socks[endpoint] = sock
            self._io.register(sock, self._on_async_readable)
        return sock

    def _on_async_readable(self, sock: zmq.Socket) -> None:
        for _ in range(self.settings.io_batch):
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
            entry = self._pending.pop(msgid, None)
            if entry is None:
                continue
            fut, convert = entry
            body = frames[1:]
            dispatcher.post(lambda fut=fut, convert=convert, body=body: _resolve(fut, convert, body))

    def socket_endpoints(self) -> List[str]:
        """The endpoints a non-blocking socket is open to (a snapshot)."""
        return list(self._async_socks)

    def pending_count(self) -> int:
        """How many non-blocking requests wait for their reply."""
        return len(self._pending)

    def drop_socket(self, endpoint: str) -> None:
        """Close the non-blocking socket to ``endpoint`` and what it queued (I/O thread)."""
        sock = self._async_socks.pop(endpoint, None)
        if sock is not None:
            self._io.unregister(sock)

    def abandon_all(self, error: Callable[[], BaseException]) -> None:
        """Close every non-blocking socket and fail each pending Future with ``error()`` (I/O thread).

        Nothing queued is sent later (to a restarted server, for example).
        """
        for endpoint in list(self._async_socks):
            self.drop_socket(endpoint)
        pending = list(self._pending.values())
        self._pending.clear()
        for fut, _ in pending:
            dispatcher.post(lambda fut=fut: settle(fut, exc=error()))

    # ------------------------------------------------------------------ closing
    def close_sockets(self) -> None:
        """Close the non-blocking sockets (I/O thread)."""
        for endpoint in list(self._async_socks):
            self.drop_socket(endpoint)

    def close(self) -> None:
        """Refuse new requests, close every thread's channel and cancel pending Futures (any thread)."""
        self._closed = True
        for ref in self._all_channels:
            ch = ref()
            if ch is not None:
                ch.close()
        self._all_channels.clear()
        for fut, _ in list(self._pending.values()):
            fut.cancel()
        self._pending.clear()


def _resolve(fut: concurrent.futures.Future, convert: Callable[[List[bytes]], Any], frames: List[bytes]) -> None:
    if fut.done():
        return
    try:
        result = convert(frames)
    except BaseException as exc:
        settle(fut, exc=exc)
        return
    if isinstance(result, concurrent.futures.Future) and result is not fut:
        # chained: the reply registered a server-side future
        result.add_done_callback(lambda src: copy_outcome(src, fut))
        return
    settle(fut, result)
