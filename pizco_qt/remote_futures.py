"""A proxy's server-side Futures: the RemoteFuture of each 'future_register' reply.

A served method that returns a Future is answered ``('PSMessage',
'future_register', msgid)``; its outcome comes later as a ``__future__``
notification ``{'msgid', 'result' | 'exception'}``. The table gives each
registered message id its ``RemoteFuture`` and settles it when the outcome
comes. An outcome may come before its reply is read: it waits as an orphan
(at most ``settings.max_orphans``, older ones dropped after
``settings.orphan_expiry`` seconds) until its Future is registered.

Thread affinity: ``register`` from any thread; ``on_frames`` on the I/O
thread, which hands the decoding and settling to the dispatcher thread.
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

from . import replies
from .config import Settings
from .delivery import dispatcher
from .futures import RemoteFuture, settle
from .protocol import Envelope, Protocol

__all__ = ["FutureTable"]


class FutureTable:
    """The pending server-side Futures of one proxy (see the module docstring).

    ``cancel_remote(msgid)`` is called when a registered Future is cancelled
    here, to tell the server (the proxy decides whether it can).
    """

    def __init__(self, endpoint: str, protocol: Protocol, settings: Settings,
                 cancel_remote: Callable[[str], None]) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.settings = settings
        self.cancel_remote = cancel_remote
        self._lock = threading.Lock()
        self._futures: Dict[str, RemoteFuture] = {}
        self._orphans: Dict[str, Tuple[float, Any]] = {}

    def register(self, msgid: str) -> RemoteFuture:
        """The Future of the server-side Future ``msgid`` (settled at once if its outcome came first)."""
        fut = RemoteFuture()
        fut.on_cancel(lambda: self._cancelled(msgid))
        with self._lock:
            orphan = self._orphans.pop(msgid, None)
            if orphan is None:
                self._futures[msgid] = fut
        if orphan is not None:
            self._settle(fut, orphan[1])
        return fut

    def on_frames(self, env: Envelope, frames: List[bytes]) -> None:
        """A ``__future__`` notification (I/O thread): decoded and applied on the dispatcher thread."""
        loads = self.protocol.loads
        dispatcher.post(lambda: self.on_outcome(loads(env.serializer, frames[2], frames[5:])))

    def on_outcome(self, content: Any) -> None:
        """Settle the Future the outcome ``content`` is for, or keep it as an orphan."""
        if not isinstance(content, dict):
            return
        msgid = content.get("msgid")
        with self._lock:
            fut = self._futures.pop(msgid, None)
            if fut is None:
                now = time.monotonic()
                self._orphans[msgid] = (now, content)
                limit = self.settings.max_orphans
                if len(self._orphans) > limit:
                    for key, (t, _) in list(self._orphans.items()):
                        if now - t > self.settings.orphan_expiry or len(self._orphans) > limit:
                            del self._orphans[key]
                return
        self._settle(fut, content)

    def pending_count(self) -> int:
        """How many registered Futures wait for their outcome."""
        return len(self._futures)

    def cancel_all(self) -> None:
        """Cancel every pending Future here only (the proxy closes; the server is not told)."""
        with self._lock:
            futures = list(self._futures.values())
            self._futures.clear()
        for fut in futures:
            concurrent.futures.Future.cancel(fut)  # not RemoteFuture.cancel: that would tell the server

    def _cancelled(self, msgid: str) -> None:
        with self._lock:
            self._futures.pop(msgid, None)
        self.cancel_remote(msgid)

    def _settle(self, fut: RemoteFuture, content: Dict[str, Any]) -> None:
        exc = content.get("exception")
        if exc is not None:
            if isinstance(exc, concurrent.futures.CancelledError):
                fut.cancel()
                return
            settle(fut, exc=replies.exception_from_reply((exc, []), self.endpoint)[0])
        else:
            settle(fut, content.get("result"))
