"""File descriptor limits: a clear error before running out, and raising the soft limit.

Every ZMQ socket costs descriptors (its mailbox, its connections), and libzmq
aborts the whole process with an assertion when it cannot get one at a bad
moment. So pizco_qt counts its process's open descriptors before it opens
sockets (creating a Server or Proxy, or a call from a thread that has no
connection yet) and, when fewer than ``RESERVE`` plus what it needs would be
left, raises ``TooManyOpenFiles`` at once, saying so and giving the limit,
instead of letting a call time out or libzmq abort. The command-line programs
raise their soft ``RLIMIT_NOFILE`` to the hard limit at start
(``raise_open_files_limit``).

Thread affinity: any thread.
"""
from __future__ import annotations

import errno
import os
import sys
from typing import Optional, Tuple

from . import config
from .errors import TooManyOpenFiles

__all__ = ["TooManyOpenFiles", "RESERVE", "open_files", "open_files_limit", "check_headroom",
           "raise_open_files_limit", "from_zmq_error"]

#: Descriptors kept free for libzmq's own needs (reconnections, its internal pipes):
#: ``Settings.fd_reserve`` (what a Server, a Proxy and a connection need: ``Settings.fd_per_*``).
RESERVE = config.DEFAULTS.fd_reserve


_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def open_files() -> Optional[int]:
    """How many descriptors this process has open, or None if it cannot tell."""
    for path in _FD_DIRS:
        try:
            return max(0, len(os.listdir(path)) - 1)  # minus the one listdir used
        except OSError:
            continue
    return None


def open_files_limit() -> Optional[int]:
    """The soft ``RLIMIT_NOFILE`` of this process, or None where there is none (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _message(what: str, used: Optional[int], limit: Optional[int]) -> str:
    used_text = f"{used} open" if used is not None else "all in use"
    return (f"too many open files: cannot {what} (this process has {used_text} of its limit of "
            f"{limit} file descriptors; pizco_qt keeps {RESERVE} free for ZMQ). Raise the limit "
            "(ulimit -n, or resource.setrlimit(resource.RLIMIT_NOFILE, ...)) or use fewer servers "
            "and proxies in this process")


def check_headroom(needed: int, what: str) -> None:
    """Raise ``TooManyOpenFiles`` if opening ``needed`` more descriptors would leave fewer than ``RESERVE``."""
    limit = open_files_limit()
    if limit is None:
        return
    used = open_files()
    if used is None:
        return
    if used + needed + RESERVE > limit:
        raise TooManyOpenFiles(_message(what, used, limit))


def from_zmq_error(exc: BaseException, what: str) -> BaseException:
    """``TooManyOpenFiles`` for an EMFILE/ENFILE error (from ZMQ or the OS), else ``exc`` itself."""
    if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
        return TooManyOpenFiles(_message(what, open_files(), open_files_limit()))
    return exc


def raise_open_files_limit() -> Tuple[Optional[int], Optional[int]]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (console scripts call it at start).

    Returns the soft limit before and after (None, None where there is no such limit).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY and sys.platform == "darwin":  # pragma: no cover - macOS
        cap = config.DEFAULTS.fd_limit_target
        target = min(int(os.sysconf("SC_OPEN_MAX")), cap) if hasattr(os, "sysconf") else cap
    if soft == resource.RLIM_INFINITY or (target != resource.RLIM_INFINITY and soft >= target):
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
