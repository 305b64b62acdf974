"""Fast multipart send and receive on the hot paths (sans-threads helpers).

pyzmq's ``send_multipart``/``recv_multipart`` are Python loops over the
Python-level ``Socket.send`` wrapper and read ``RCVMORE`` with a getsockopt
that costs several times a receive; a standard pizco_qt message has six or
seven frames (a compact one, between pizco_qt peers, one), so calling the
compiled backend methods directly and reading the ``more`` flag of each
received ``zmq.Frame`` saves microseconds per message. Small frames are
copied (cheapest for ZMQ); frames of ``ZERO_COPY`` bytes or more are sent
without copying and, past the first ``copied`` frames of a received message
(the envelope and the five protocol frames), received without copying as
memoryviews, so large out-of-band buffers cross the process boundary without
a copy in Python.

Thread affinity: the functions run on the thread that owns the socket.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Sequence

import zmq

from .config import DEFAULTS, Settings
from .errors import ProtocolError
from .protocol import COMPACT, unpack_compact

__all__ = ["send_frames", "send_one", "send_routed", "recv_frames", "recv_routed", "recv_routed_user", "recv_reply",
           "readable",
           "close_owned", "ZERO_COPY"]

#: Frames at least this large are sent and (past the protocol frames) received without copying.
ZERO_COPY = DEFAULTS.large_frame

_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)

try:  # the compiled methods under pyzmq's Python-level wrappers
    from zmq.backend import Socket as _Base

    _send = _Base.send
    _recv = _Base.recv
    _get = _Base.get
except (ImportError, AttributeError):  # pragma: no cover - other pyzmq backends
    _send = zmq.Socket.send
    _recv = zmq.Socket.recv
    _get = zmq.Socket.getsockopt


def send_frames(sock: zmq.Socket, frames: Sequence[Any], flags: int = 0) -> None:
    """Send ``frames`` as one multipart message (large frames without copying).

    Raises zmq.Again (with NOBLOCK or SNDTIMEO) only before the first frame is
    queued: ZMQ queues the rest of a multipart message atomically.
    """
    last = len(frames) - 1
    flags = int(flags)  # pyzmq's enums make every ``|`` a Python-level call
    more = flags | _SNDMORE
    for i, frame in enumerate(frames):
        if isinstance(frame, bytes) and len(frame) < ZERO_COPY:
            _send(sock, frame, more if i < last else flags)
        else:
            _send(sock, frame, more if i < last else flags, False)


def send_routed(sock: zmq.Socket, route: bytes, frame: bytes) -> None:
    """Send one frame behind its routing id on a ROUTER (a compact reply)."""
    _send(sock, route, _SNDMORE)
    _send(sock, frame, 0)


def send_one(sock: zmq.Socket, frame: bytes) -> None:
    """Send a one-frame message (a compact request); zmq.Again as ``send_frames``."""
    _send(sock, frame, 0)


def recv_frames(sock: zmq.Socket, flags: int = 0, copied: int = 6) -> List[Any]:
    """Receive one multipart message.

    The first ``copied`` frames are bytes; later frames are bytes when small and
    read-only memoryviews of the received ZMQ message when large (no copy).
    Each frame is received as a ``zmq.Frame``, whose ``more`` flag libzmq sets
    in compiled code: asking the socket for ``RCVMORE`` costs several times a
    receive in pyzmq.
    """
    frame = _recv(sock, int(flags), False)
    frames: List[Any] = [frame.bytes]
    if frame.more:
        _recv_rest(sock, frames, copied)
    return frames


def recv_routed(sock: zmq.Socket, flags: int = 0) -> List[Any]:
    """Receive one message on a ROUTER: the routing id, then the message's frames.

    A ROUTER always follows the routing id with the peer's frames, so only the
    later frames need their ``more`` flag.
    """
    frames: List[Any] = [_recv(sock, int(flags))]
    return _recv_rest(sock, frames, 7)


def recv_routed_user(sock: zmq.Socket, flags: int = 0) -> "tuple[List[Any], Optional[str]]":
    """``recv_routed``, plus the ``User-Id`` its security handshake gave the peer (a CURVE
    client's z85 public key), or None."""
    frames: List[Any] = [_recv(sock, int(flags))]
    frame = _recv(sock, 0, False)
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        user = None
    frames.append(frame.bytes)
    if frame.more:
        _recv_rest(sock, frames, 7)
    return frames, user


def _recv_rest(sock: zmq.Socket, frames: List[Any], copied: int) -> List[Any]:
    """Append the remaining frames of a message (ZMQ delivers them all at once)."""
    while True:
        frame = _recv(sock, 0, False)
        if len(frames) < copied or len(frame) < ZERO_COPY:
            frames.append(frame.bytes)
        else:
            frames.append(frame.buffer)
        if not frame.more:
            return frames


def recv_reply(sock: zmq.Socket) -> Optional[List[Any]]:
    """Receive one reply on a request DEALER (blocking, bounded by its ``RCVTIMEO``).

    Returns the protocol frames of a standard reply (those after the empty
    delimiter) or of a compact one, or None for anything else (consumed). A
    compact reply is one frame by construction, so its ``more`` flag is not
    read; were a peer to send more, the leftover frames would arrive as a
    reply of their own and be dropped like any stale reply.
    """
    data = _recv(sock, 0)
    if data[:4] == COMPACT:
        try:
            return unpack_compact(data)
        except ProtocolError:
            return None
    if not _get(sock, _RCVMORE):
        return None
    if not data:
        return _recv_rest(sock, [], 5)
    _recv_rest(sock, [], 0)  # not a reply of ours: drop the rest of it
    return None


def readable(sock: zmq.Socket) -> bool:
    """Whether a message can be received from ``sock`` without waiting."""
    return bool(_get(sock, _EVENTS) & _POLLIN)


def close_owned(channel: Any, release: Callable[[], None], settings: Settings = DEFAULTS) -> None:
    """Close a request socket owned by one thread, from any thread, without racing its owner.

    ``channel`` has ``lock`` (held by its owner during a call) and ``closed``;
    ``release()`` closes its sockets. If the owner is inside a call (bounded by its
    timeout), the sockets are closed by a short-lived thread once that call ends
    (``settings.owner_wait`` and ``settings.closer_patience`` bound the waits).
    """
    if channel.lock.acquire(timeout=settings.owner_wait):
        try:
            if not channel.closed:
                channel.closed = True
                release()
        finally:
            channel.lock.release()
        return
    channel.closed = True

    def when_free() -> None:
        if channel.lock.acquire(timeout=settings.closer_patience):
            try:
                release()
            finally:
                channel.lock.release()

    threading.Thread(target=when_free, name="pizco-closer", daemon=True).start()
