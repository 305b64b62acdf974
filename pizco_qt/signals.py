"""Signal: a thread-safe, PyQt-like signal for plain (non-Qt) objects.

Declared on a class it behaves like ``pyqtSignal``: each instance gets its own
signal on first access. Slots are called in the order they were connected, each
at most once per emission, in the emitting thread; a slot that takes fewer
positional parameters receives the leading arguments (Qt semantics), and one
that requires more gets the missing ones as None, up to three in all (Pizco's
value, old value, other). See ``fit_args``.

Thread affinity: connect, disconnect and emit from any thread.
"""
from __future__ import annotations

import ast
import threading
from typing import Any, Callable, List, Optional, Tuple

from .config import DEFAULTS
from ._qt import is_qt_signal, slot_params

__all__ = ["Signal", "is_signal_like", "fit_args", "params_from_signature", "PAD_TO"]

#: A slot that requires more positional parameters than were emitted gets the
#: missing ones as None, up to this many arguments in all.
PAD_TO = 3


def fit_args(args: tuple, required: int, accepted: Optional[int]) -> tuple:
    """The arguments a slot gets for an emission of ``args``.

    ``required`` / ``accepted`` are the slot's positional parameters (see
    ``slot_params``; ``accepted`` None means ``*args`` or unknown: everything
    emitted). A slot never gets more than it accepts (the leading arguments, as
    in Qt); one that requires more than were emitted gets None for each missing
    one, up to ``PAD_TO`` arguments in all.
    """
    if accepted is None:
        return args
    n = len(args)
    if n > accepted:
        return args[:accepted]
    if n < required and n < PAD_TO:
        return args + (None,) * (min(required, PAD_TO) - n)
    return args


def is_signal_like(obj: Any) -> bool:
    """True if ``obj`` has ``connect``, ``disconnect`` and ``emit`` (pizco_qt, Qt or look-alike)."""
    if obj is None or isinstance(obj, type):
        return False
    try:
        return all(callable(getattr(obj, n, None)) for n in ("connect", "disconnect", "emit"))
    except Exception:
        return False


def as_callable(slot: Any) -> Callable[..., Any]:
    """The function to call for ``slot``: a signal used as a slot is emitted (chaining)."""
    if is_qt_signal(slot) or (not callable(slot) and is_signal_like(slot)):
        return slot.emit
    if not callable(slot):
        raise TypeError(f"a slot must be callable or a signal, not {type(slot).__name__}")
    return slot


def params_from_signature(text: Any) -> "tuple[int, Optional[int]]":
    """``(required, accepted)`` positional parameters of a signature's text, e.g. ``'(x, y=1)'``.

    The text (what ``str(inspect.signature(f))`` gives, as a server's
    ``describe`` reports it) is only parsed, never evaluated. ``(0, None)``
    (all arguments) when it cannot be parsed or takes ``*args``.
    """
    if not isinstance(text, str) or not text.startswith("(") or len(text) > DEFAULTS.max_signature_text:
        return 0, None
    try:
        args = ast.parse(f"def _f{text}: pass").body[0].args  # type: ignore[attr-defined]
    except (SyntaxError, ValueError, TypeError, IndexError, AttributeError, RecursionError, MemoryError):
        return 0, None
    accepted = len(args.posonlyargs) + len(args.args)
    required = accepted - len(args.defaults)
    return required, (None if args.vararg is not None else accepted)


class Signal:
    """A signal for plain objects: ``connect``, ``disconnect(slot=None)``, ``emit(*args)``.

    Parameters
    ----------
    *types
        Documentation only (as in ``pyqtSignal(int, float)``); not enforced.

    Thread affinity: any thread; slots run in the emitting thread.
    """

    def __init__(self, *types: Any) -> None:
        self.types = types
        self._name: Optional[str] = None
        self._slots: Tuple[Tuple[Any, Callable[..., Any], int, Optional[int]], ...] = ()
        self._lock = threading.Lock()

    # -- descriptor: a signal declared on a class is per instance ------------
    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, objtype: Optional[type] = None) -> "Signal":
        if obj is None or self._name is None:
            return self
        try:
            store = obj.__dict__
        except AttributeError:  # __slots__ classes share the class-level signal
            return self
        sig = store.get(self._name)
        if sig is None:
            sig = Signal(*self.types)
            sig.__set_name__(objtype if objtype is not None else type(obj), self._name)
            sig = store.setdefault(self._name, sig)
        return sig

    def __repr__(self) -> str:
        return f"<pizco_qt.Signal {self._name or ''} with {len(self._slots)} slot(s)>"

    # -- API ---------------------------------------------------------------
    def connect(self, slot: Any) -> None:
        """Connect ``slot`` (a callable or another signal); connecting it twice does nothing."""
        call = as_callable(slot)
        required, accepted = slot_params(slot)
        with self._lock:
            if any(entry[0] == slot for entry in self._slots):
                return
            self._slots = self._slots + ((slot, call, required, accepted),)

    def disconnect(self, slot: Any = None) -> None:
        """Disconnect ``slot``, or every slot when None.

        Raises
        ------
        TypeError
            If ``slot`` is not connected.
        """
        with self._lock:
            if slot is None:
                self._slots = ()
                return
            kept = tuple(entry for entry in self._slots if entry[0] != slot)
            if len(kept) == len(self._slots):
                raise TypeError(f"{slot!r} is not connected to {self!r}")
            self._slots = kept

    def emit(self, *args: Any) -> None:
        """Call every connected slot with ``args`` (fitted to each slot: see ``fit_args``)."""
        for _, call, required, accepted in self._slots:
            if accepted is None or required <= len(args) <= accepted:
                call(*args)
            else:
                call(*fit_args(args, required, accepted))

    @property
    def slots(self) -> List[Any]:
        """The connected slots, in connection order."""
        return [entry[0] for entry in self._slots]
