"""The wire protocol: frames <-> messages, signatures and serializers (sans-IO).

Every message is a multipart ZMQ message of five frames::

    0  header      utf-8 ``PZC00+<sender>+<topic>``; senders and topics never contain ``+``
    1  serializer  utf-8 ``pickle`` | ``pickleN`` (N = protocol number) | ``json`` | ``pickle5oob``
    2  content     the serialized payload
    3  message id  utf-8, unique per request; a reply carries its request's id
    4  signature   raw 20-byte HMAC-SHA1 of frames 0-3 concatenated (and, for
                   ``pickle5oob`` with buffers, of the buffers' layout -- their
                   count and lengths -- and every buffer frame); empty without a key

``pickle5oob`` (offered only by pizco_qt servers that advertise the ``oob``
capability) adds frames 5..n: the pickle protocol-5 out-of-band buffers, sent
without copying. Every other message has exactly five frames.

Between pizco_qt peers (servers that advertise the ``compact`` capability) a
small request may travel as one *compact* frame holding the same five fields
(``pack_compact``): one ZMQ frame costs the sender and the receiver a fraction
of the calls that six do. A server answers a compact request compactly and
every other request with the five frames; the signature is the same HMAC over
the same fields, checked before anything is deserialized.

Subscriptions use the header ``PZC00+<sender>+<topic>`` as the ZMQ topic prefix;
receivers compare the parsed sender and topic exactly, so ``topic1`` never
delivers ``topic10``.

The signature is checked before anything is deserialized: a badly signed
message is rejected without running a byte of its content.

Thread affinity: a Protocol is immutable and may be shared by all threads.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import hmac
import io
import json
import pickle
import struct
import uuid
from typing import Any, List, NamedTuple, Optional, Sequence

from . import config, forking
from .errors import REASON_ATTR, AuthenticationError, ProtocolError

__all__ = ["Protocol", "Envelope", "Message", "PREFIX", "header", "new_msgid", "CAPABILITIES",
           "ACK_PREFIX", "HEARTBEAT_TOPIC", "FUTURE_TOPIC", "LOCK_TOPIC", "COMPACT", "pack_compact", "unpack_compact"]

#: What a pizco_qt server adds to the original protocol (advertised by 'info').
CAPABILITIES = ["heartbeat", "ack", "cancel", "oob", "describe", "getmany", "compact"]
ACK_PREFIX = "__ack__"
HEARTBEAT_TOPIC = "__heartbeat__"
FUTURE_TOPIC = "__future__"
#: Changes of exclusive control are published here (content: ``(holder_or_None,)``).
LOCK_TOPIC = "__lock__"

_ids = itertools.count(1)
_id_prefix = uuid.uuid4().hex[:12]

def new_msgid() -> str:
    """A message id unique to this process run (cheaper than a uuid per call)."""
    return f"{_id_prefix}-{next(_ids)}"


def _new_ids_after_fork() -> None:
    """A forked child must not reuse its parent's message ids (a keyed server refuses replays)."""
    global _id_prefix, _ids
    _id_prefix = uuid.uuid4().hex[:12]
    _ids = itertools.count(1)


forking.on_fork_child(_new_ids_after_fork)


PREFIX = "PZC00"
_PREFIX_B = b"PZC00+"
OOB = "pickle5oob"


#: The first bytes of a compact frame (never the start of a standard first frame).
COMPACT = b"PZC\x01"
#: Compact frames carry a payload below this size (larger ones use the five frames).
COMPACT_MAX = config.DEFAULTS.large_frame
#: magic, then the lengths of the header, serializer, message id and signature.
_COMPACT_HEAD = struct.Struct("<4sHBBB")
_COMPACT_FIELDS = _COMPACT_HEAD.size


def pack_compact(frames: Sequence[Any]) -> Optional[bytes]:
    """The five frames of a message as one compact frame, or None if they do not fit one.

    Layout: ``COMPACT``, the lengths of frames 0, 1, 3 and 4 (little-endian
    u16, u8, u8, u8), frames 0, 1, 3 and 4, then the content (frame 2). Messages
    with out-of-band buffers, a content of ``COMPACT_MAX`` bytes or more, or
    fields too long for their length byte do not fit.
    """
    if len(frames) != 5:
        return None
    head, ser, payload, msgid, sig = frames
    if len(payload) >= COMPACT_MAX or len(head) > 0xFFFF or len(ser) > 0xFF or len(msgid) > 0xFF \
            or len(sig) > 0xFF:
        return None
    return b"".join((_COMPACT_HEAD.pack(COMPACT, len(head), len(ser), len(msgid), len(sig)),
                     head, ser, msgid, sig, payload))


def unpack_compact(frame: bytes) -> List[bytes]:
    """The five frames held by a compact frame.

    Raises
    ------
    ProtocolError
        If ``frame`` is not a well-formed compact frame.
    """
    try:
        magic, hl, sl, il, gl = _COMPACT_HEAD.unpack_from(frame)
    except struct.error:
        raise ProtocolError(f"truncated compact frame ({len(frame)} bytes)") from None
    if magic != COMPACT:
        raise ProtocolError("not a compact frame")
    a = _COMPACT_FIELDS + hl
    b = a + sl
    c = b + il
    d = c + gl
    if d > len(frame):
        raise ProtocolError(f"truncated compact frame ({len(frame)} bytes, fields need {d})")
    return [frame[_COMPACT_FIELDS:a], frame[a:b], frame[d:], frame[b:c], frame[c:d]]


class Envelope(NamedTuple):
    """What can be read of a message without deserializing its content."""

    sender: str
    topic: str
    serializer: str
    msgid: str


class Message(NamedTuple):
    """A fully decoded message."""

    sender: str
    topic: str
    serializer: str
    content: Any
    msgid: str


@functools.lru_cache(maxsize=config.DEFAULTS.header_cache)
def header(sender: str, topic: str) -> bytes:
    """The header frame (and subscription prefix) for ``sender`` and ``topic``."""
    return f"{PREFIX}+{sender}+{topic}".encode("utf-8")


#: Serializer frames that need no validation (the common ones), decoded; and encoded.
_KNOWN_SER = {b"pickle": "pickle", b"json": "json", OOB.encode(): OOB,
              **{f"pickle{n}".encode(): f"pickle{n}" for n in range(pickle.HIGHEST_PROTOCOL + 1)}}
_SER_FRAMES = {name: frame for frame, name in _KNOWN_SER.items()}


def is_pickle_protocol_name(name: str) -> bool:
    """Whether ``name`` reads as ``pickleN`` (any N: whether this Python has it is another question)."""
    return name.startswith("pickle") and name[6:].isdigit()


def serializer_known(name: str) -> bool:
    """Whether this process reads and writes serializer ``name`` (the one table of names)."""
    return name in _SER_FRAMES or (is_pickle_protocol_name(name) and int(name[6:]) <= pickle.HIGHEST_PROTOCOL)


def _check_serializer(name: str) -> str:
    if serializer_known(name):
        return name
    if is_pickle_protocol_name(name):
        raise ValueError(f"serializer {name!r}: this Python supports pickle up to {pickle.HIGHEST_PROTOCOL}")
    raise ValueError(f"unknown serializer {name!r} (use 'pickle', 'pickleN', 'json')")


#: ``bytes`` at least this large travel as out-of-band frames with ``pickle5oob``.
OOB_BYTES = config.DEFAULTS.large_frame
_SCAN = (config.DEFAULTS.large_bytes_scan, config.DEFAULTS.large_bytes_scan_each,
         config.DEFAULTS.large_bytes_scan_depth)


def _has_large_bytes(content: Any) -> bool:
    """Whether ``content`` holds a large ``bytes`` within a few levels (a bounded look)."""
    budget, each, levels = _SCAN
    stack = [(content, 0)]
    while stack and budget > 0:
        obj, depth = stack.pop()
        budget -= 1
        kind = type(obj)
        if kind is bytes:
            if len(obj) >= OOB_BYTES:
                return True
        elif depth < levels:
            if kind is tuple or kind is list:
                stack.extend((item, depth + 1) for item in obj[:each])
            elif kind is dict:
                stack.extend((item, depth + 1) for item in list(obj.values())[:each])
    return False


class _BytesOutOfBand(pickle.Pickler):
    """Pickles large ``bytes`` as persistent ids that are protocol-5 out-of-band buffers."""

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is bytes and len(obj) >= OOB_BYTES:
            return pickle.PickleBuffer(obj)
        return None


class _BytesInBand(pickle.Unpickler):
    """Turns the out-of-band buffers of ``_BytesOutOfBand`` back into ``bytes``."""

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, (memoryview, bytes, bytearray)):
            return bytes(pid)
        raise pickle.UnpicklingError("unsupported persistent id")


#: Types that never pickle out of band (a reply holding one needs no buffer callback).
_NO_BUFFERS = frozenset({int, float, complex, bool, str, type(None)})


def _dumps_oob(content: Any) -> "tuple[bytes, Optional[list]]":
    """Pickle ``content`` with protocol 5: the payload and its out-of-band buffers (None if none)."""
    if type(content) is tuple and len(content) == 3 and type(content[2]) in _NO_BUFFERS \
            and content[0] == "PSMessage" and type(content[1]) is str:
        return pickle.dumps(content, 5), None  # a reply of a plain value: the same bytes, sooner
    found: list = []
    payload = pickle.dumps(content, 5, buffer_callback=found.append)
    if len(payload) >= OOB_BYTES and _has_large_bytes(content):
        # bytes are always pickled in-band: move the large ones out of band too
        found = []
        out = io.BytesIO()
        _BytesOutOfBand(out, 5, buffer_callback=found.append).dump(content)
        payload = out.getvalue()
    return payload, ([b.raw() for b in found] if found else None)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, BaseException):
        out = {"__exception__": type(obj).__name__, "args": [str(a) for a in obj.args]}
        reason = getattr(obj, REASON_ATTR, None)
        if isinstance(reason, str):
            out["reason"] = reason
        return out
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def oob_layout(buffers: Sequence[Any]) -> bytes:
    """What a ``pickle5oob`` signature covers besides the bytes: the number of buffer frames
    and each one's length (little-endian u32 count, then u64 lengths)."""
    sizes = [memoryview(b).nbytes for b in buffers]
    return b"PZC-oob" + struct.pack(f"<I{len(sizes)}Q", len(sizes), *sizes)


#: Parsed headers: {header frame: (sender, topic)} (bounded; senders are few).
_HEADS: "dict[bytes, tuple[str, str]]" = {}


def _parse_header(head: bytes) -> "tuple[str, str]":
    """(sender, topic) of a header frame; ProtocolError if it is malformed."""
    if not head.startswith(_PREFIX_B):
        raise ProtocolError(f"wrong header {head[:40]!r} (expected {PREFIX}+sender+topic)")
    try:
        parts = head.decode("utf-8").split("+")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"undecodable header, serializer or message id: {exc}") from None
    if len(parts) != 3:
        raise ProtocolError(f"wrong header {head[:40]!r}: expected three '+'-separated parts")
    parsed = (parts[1], parts[2])
    if len(_HEADS) >= config.DEFAULTS.header_cache:  # headers quote their senders' input: keep the cache bounded
        _HEADS.clear()
    _HEADS[head] = parsed
    return parsed


class Protocol:
    """Encoding, decoding and signing of pizco_qt messages.

    Parameters
    ----------
    hmac_key : str or bytes
        Shared key for HMAC-SHA1 signatures; empty means unsigned. ``None`` reads ``PZC_KEY``.
    serializer : str, optional
        ``pickle`` (default, or ``PZC_SER``), ``pickleN`` or ``json``.

    Raises
    ------
    ValueError
        For an unknown serializer name.
    """

    __slots__ = ("hmac_key", "serializer")

    #: The protocol version that starts every header frame (``PZC00``).
    HEADER = PREFIX

    def __init__(self, hmac_key: "str | bytes | None" = "", serializer: Optional[str] = None) -> None:
        if hmac_key is None:
            hmac_key = config.hmac_key()
        self.hmac_key: bytes = hmac_key.encode("utf-8") if isinstance(hmac_key, str) else bytes(hmac_key)
        self.serializer: str = _check_serializer(serializer or config.serializer())

    @classmethod
    def from_environment(cls) -> "Protocol":
        """The protocol an agent uses when none is given: ``PZC_KEY`` and ``PZC_SER``."""
        return cls.from_settings(config.Settings.from_environment())

    @classmethod
    def from_settings(cls, settings: "config.Settings") -> "Protocol":
        """The protocol of ``settings``: its ``hmac_key`` and ``serializer``."""
        return cls(settings.hmac_key, settings.serializer)

    def __repr__(self) -> str:
        return f"Protocol(hmac_key={'<set>' if self.hmac_key else ''!r}, serializer={self.serializer!r})"

    # -- signatures -------------------------------------------------------
    def sign(self, frames: Sequence[Any]) -> bytes:
        """The signature of ``frames`` (raw HMAC-SHA1 digest, or b'' without a key)."""
        if not self.hmac_key:
            return b""
        digest = hmac.new(self.hmac_key, digestmod=hashlib.sha1)
        for frame in frames:
            digest.update(frame)
        return digest.digest()

    def sign_message(self, fields: Sequence[Any], buffers: Sequence[Any] = ()) -> bytes:
        """The signature of a message: frames 0-3 (Pizco's, unchanged), then for out-of-band
        buffers their layout (``oob_layout``) and the buffers, so re-splitting them breaks it."""
        if not buffers:
            return self.sign(fields)
        return self.sign([*fields, oob_layout(buffers), *buffers])

    # -- serializers ------------------------------------------------------
    def dumps(self, content: Any, serializer: Optional[str] = None) -> "tuple[bytes, list]":
        """Serialize ``content``; returns the payload and the out-of-band buffers."""
        name = serializer or self.serializer
        if name == "pickle":
            return pickle.dumps(content, pickle.HIGHEST_PROTOCOL), []
        if name == OOB:
            payload, buffers = _dumps_oob(content)
            return payload, buffers or []
        if name == "json":
            return json.dumps(content, default=_json_default).encode("utf-8"), []
        if name.startswith("pickle") and name[6:].isdigit():
            return pickle.dumps(content, int(name[6:])), []
        raise ProtocolError(f"unknown serializer {name!r}")

    @staticmethod
    def loads(serializer: str, payload: Any, buffers: Sequence[Any] = ()) -> Any:
        """Deserialize a payload; any failure raises ProtocolError."""
        try:
            if serializer == OOB:
                if not buffers:
                    return pickle.loads(payload)
                return _BytesInBand(io.BytesIO(payload), buffers=buffers).load()
            if serializer == "json":
                return json.loads(bytes(payload).decode("utf-8"))
            if serializer.startswith("pickle"):
                return pickle.loads(payload)
        except Exception as exc:  # hostile payloads raise anything
            raise ProtocolError(f"cannot decode {serializer} content: {type(exc).__name__}: {exc}") from exc
        raise ProtocolError(f"unknown serializer {serializer!r}")

    # -- messages ---------------------------------------------------------
    def encode(
        self, sender: str, topic: str, content: Any, msgid: str, serializer: Optional[str] = None
    ) -> List[Any]:
        """Build the frames of one message (5, or more for ``pickle5oob`` with buffers)."""
        name = serializer or self.serializer
        buffers: Any = None
        if name == "pickle":  # the common cases first
            payload = pickle.dumps(content, pickle.HIGHEST_PROTOCOL)
        elif name == OOB:
            payload, buffers = _dumps_oob(content)
        else:
            payload, buffers = self.dumps(content, name)
        frames: List[Any] = [header(sender, topic), _SER_FRAMES.get(name) or name.encode("utf-8"), payload,
                             msgid.encode("utf-8")]
        if self.hmac_key:
            frames.append(self.sign_message(frames, buffers or ()))
        else:
            frames.append(b"")
        if buffers:
            frames.extend(buffers)
        return frames

    def encode_compact(
        self, sender: str, topic: str, content: Any, msgid: str, serializer: Optional[str] = None
    ) -> "bytes | List[Any]":
        """One compact frame for a message that fits one (see ``pack_compact``), else its frames."""
        name = serializer or self.serializer
        if name == OOB:
            payload, buffers = _dumps_oob(content)
        elif name == "pickle":
            payload, buffers = pickle.dumps(content, pickle.HIGHEST_PROTOCOL), None
        else:
            payload, buffers = self.dumps(content, name)
        head = header(sender, topic)
        ser = _SER_FRAMES.get(name) or name.encode("utf-8")
        mid = msgid.encode("utf-8")
        sig = self.sign_message([head, ser, payload, mid], buffers or ()) if self.hmac_key else b""
        if buffers or len(payload) >= COMPACT_MAX or len(head) > 0xFFFF or len(mid) > 0xFF or len(ser) > 0xFF:
            frames = [head, ser, payload, mid, sig]
            if buffers:
                frames.extend(buffers)
            return frames
        return b"".join((_COMPACT_HEAD.pack(COMPACT, len(head), len(ser), len(mid), len(sig)),
                         head, ser, mid, sig, payload))

    def check(self, frames: Sequence[Any]) -> Envelope:
        """Validate frame count, signature and header without deserializing anything.

        Raises
        ------
        ProtocolError
            For a wrong frame count, a bad signature, a bad header or serializer name.
        """
        n = len(frames)
        if n != 5:
            if n < 5:
                raise ProtocolError(f"expected 5 frames, got {n}")
            if bytes(frames[1]) != b"pickle5oob":
                raise ProtocolError(f"expected 5 frames, got {n}")
        if self.hmac_key:
            expected = self.sign_message(frames[:4], frames[5:])
            if not hmac.compare_digest(bytes(frames[4]), expected):
                raise AuthenticationError("bad signature: check PZC_KEY")
        head = frames[0]
        if type(head) is not bytes:
            head = bytes(head)
        parsed = _HEADS.get(head)
        if parsed is None:
            parsed = _parse_header(head)
        ser_b = frames[1]
        if type(ser_b) is not bytes:
            ser_b = bytes(ser_b)
        ser = _KNOWN_SER.get(ser_b)
        mid = frames[3]
        try:
            msgid = (mid if type(mid) is bytes else bytes(mid)).decode("utf-8")
            if ser is None:
                ser = ser_b.decode("ascii")
                if not serializer_known(ser):
                    raise ProtocolError(f"unknown serializer {ser!r}")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"undecodable header, serializer or message id: {exc}") from None
        return Envelope(parsed[0], parsed[1], ser, msgid)

    def decode(self, frames: Sequence[Any]) -> Message:
        """Parse one received message; any defect raises ProtocolError."""
        env = self.check(frames)
        content = self.loads(env.serializer, frames[2], frames[5:])
        return Message(env.sender, env.topic, env.serializer, content, env.msgid)

    # -- Pizco's message API (thin wrappers over encode / check / decode) --
    def format(self, sender: str, topic: str = "", content: Any = "", msgid: Optional[str] = None,
               just_header: bool = False) -> "List[Any] | bytes":
        """The frames of one message, signed with this protocol's key (Pizco's ``format``).

        Parameters
        ----------
        sender, topic : str
            Go into the header ``PZC00+<sender>+<topic>``; neither may contain ``+``.
        content : object
            Serialized with this protocol's serializer.
        msgid : str, optional
            The message id; a new unique one when None.
        just_header : bool
            Return only the header frame (``bytes``): the ZMQ subscription prefix
            for ``topic`` of ``sender``.

        Returns
        -------
        list of bytes
            The five frames (header, serializer, content, message id, signature),
            ready for ``socket.send_multipart``.

        Raises
        ------
        ValueError
            (a ProtocolError) if ``sender`` or ``topic`` contains ``+`` or the
            content cannot be serialized.
        """
        if "+" in sender or "+" in topic:
            raise ProtocolError(f"sender {sender!r} and topic {topic!r} may not contain '+'")
        if just_header:
            return header(sender, topic)
        try:
            return self.encode(sender, topic, content, new_msgid() if msgid is None else msgid)
        except ProtocolError:
            raise
        except Exception as exc:  # pickle and json raise many types for unserializable content
            raise ProtocolError(f"cannot serialize the content with {self.serializer}: "
                                f"{type(exc).__name__}: {exc}") from exc

    def parse(self, message: Sequence[Any], check_sender: Optional[str] = None,
              check_msgid: Optional[str] = None) -> "tuple[str, str, Any, str]":
        """``(sender, topic, content, msgid)`` of a received message (Pizco's ``parse``).

        ``message`` is what ``socket.recv_multipart()`` returned. The signature is
        checked before the content is deserialized.

        Raises
        ------
        ValueError
            (a ProtocolError) for a wrong frame count, a bad signature, a wrong
            header, undecodable content, or a sender or message id different from
            ``check_sender`` / ``check_msgid`` (when given).
        """
        msg = self.decode(message)
        if check_sender and msg.sender != check_sender:
            raise ProtocolError(f"wrong sender: expected {check_sender!r}, got {msg.sender!r}")
        if isinstance(check_msgid, (bytes, bytearray)):
            check_msgid = bytes(check_msgid).decode("utf-8", "replace")
        if check_msgid and msg.msgid != check_msgid:
            raise ProtocolError(f"wrong message id: expected {check_msgid!r}, got {msg.msgid!r}")
        return msg.sender, msg.topic, msg.content, msg.msgid
