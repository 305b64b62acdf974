"""Dialogs of the monitor: calling a remote method, adding a server by endpoint.

The call dialog never blocks: the call is sent without waiting, the dialog shows
the time elapsed while the server works, then the result or the remote exception
with its traceback. A call can be abandoned with Cancel (a remote Future is
cancelled on the server too).

Thread affinity: GUI thread.
"""
from __future__ import annotations

import concurrent.futures
import pprint
import time
from typing import Any, Callable, Optional

from qtpy import QtCore, QtGui, QtWidgets

from .models import parse_call_arguments

__all__ = ["CallDialog", "AddServerDialog"]


def _mono_font() -> QtGui.QFont:
    return QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont)


class CallDialog(QtWidgets.QDialog):
    """Call one method of a server with arguments typed as Python literals.

    ``call(args, kwargs) -> Future`` sends the call; ``watch(fut, ok, err)`` brings
    its outcome back to the GUI thread.
    """

    #: Signal(object) -- the result of the last call that succeeded.
    succeeded = QtCore.Signal(object)
    #: Signal(object) -- the exception of the last call that failed.
    failed = QtCore.Signal(object)

    def __init__(self, server: str, name: str, signature: str, doc: str,
                 call: Callable[[tuple, dict], concurrent.futures.Future],
                 watch: Callable[..., Any], parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("call_dialog")
        self.setWindowTitle(f"Call {name} on {server}")
        self.setAttribute(QtCore.Qt.WA_DeleteOnClose)
        self.resize(620, 420)
        self._call = call
        self._watch = watch
        self._future: Optional[concurrent.futures.Future] = None
        self._started = 0.0

        title = QtWidgets.QLabel(f"<b>{name}</b><span style='color:#555'>{_escape(signature)}</span>")
        title.setTextFormat(QtCore.Qt.RichText)
        title.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        about = QtWidgets.QLabel(doc or "")
        about.setWordWrap(True)
        about.setStyleSheet("color:#555")
        about.setVisible(bool(doc))

        self.arguments = QtWidgets.QLineEdit()
        self.arguments.setObjectName("arguments")
        self.arguments.setFont(_mono_font())
        self.arguments.setPlaceholderText("arguments as Python literals, e.g.  1.5, 'fast', retries=3")
        self.arguments.setClearButtonEnabled(True)
        self.arguments.returnPressed.connect(self.start)

        self.output = QtWidgets.QPlainTextEdit()
        self.output.setObjectName("output")
        self.output.setReadOnly(True)
        self.output.setLineWrapMode(QtWidgets.QPlainTextEdit.NoWrap)
        self.output.setFont(_mono_font())
        self.output.setPlaceholderText("The result or the remote exception appears here.")

        self.state = QtWidgets.QLabel("Ready")
        self.state.setObjectName("call_state")

        self.call_button = QtWidgets.QPushButton("&Call")
        self.call_button.clicked.connect(self.start)
        self.cancel_button = QtWidgets.QPushButton("C&ancel call")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.close)
        for button in (self.call_button, self.cancel_button, close):
            button.setAutoDefault(False)  # Return in the arguments calls once, through returnPressed

        form = QtWidgets.QFormLayout()
        form.addRow("&Arguments:", self.arguments)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.state, 1)
        buttons.addWidget(self.call_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(about)
        layout.addLayout(form)
        layout.addWidget(self.output, 1)
        layout.addLayout(buttons)

        self._ticker = QtCore.QTimer(self)
        self._ticker.setInterval(100)
        self._ticker.timeout.connect(self._tick)
        self.arguments.setFocus()

    def start(self) -> None:
        """Parse the arguments and send the call."""
        if self._future is not None and not self._future.done():
            return
        try:
            args, kwargs = parse_call_arguments(self.arguments.text())
        except ValueError as exc:
            self._show("Bad arguments", str(exc), error=True)
            return
        self._started = time.monotonic()
        fut = self._future = self._call(args, kwargs)
        self.call_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.state.setText("Calling\u2026")
        self._ticker.start()
        self._watch(fut, lambda result, fut=fut: self._finished(fut, result),
                    lambda exc, fut=fut: self._failed(fut, exc))

    def cancel(self) -> None:
        """Stop waiting for the call in progress."""
        if self._future is not None:
            self._future.cancel()

    def _tick(self) -> None:
        self.state.setText(f"Waiting for the server\u2026 {time.monotonic() - self._started:.1f} s")

    def _done(self) -> float:
        self._ticker.stop()
        self.call_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        return time.monotonic() - self._started

    def _finished(self, fut: concurrent.futures.Future, result: Any) -> None:
        if fut is not self._future:
            return
        took = self._done()
        self._show(f"Returned in {took * 1000:.0f} ms" if took < 2 else f"Returned in {took:.1f} s",
                   pprint.pformat(result, width=88, sort_dicts=False))
        self.succeeded.emit(result)

    def _failed(self, fut: concurrent.futures.Future, exc: BaseException) -> None:
        if fut is not self._future:
            return
        took = self._done()
        if isinstance(exc, concurrent.futures.CancelledError):
            self._show("Cancelled", f"Stopped waiting after {took:.1f} s.", error=True)
        else:
            text = f"{type(exc).__name__}: {exc}"
            remote_tb = getattr(exc, "remote_traceback", None)
            if remote_tb:
                text += "\n\nRemote traceback:\n" + (remote_tb if isinstance(remote_tb, str)
                                                      else "".join(remote_tb))
            self._show(f"Raised {type(exc).__name__} after {took:.2f} s", text.rstrip(), error=True)
        self.failed.emit(exc)

    def _show(self, state: str, text: str, error: bool = False) -> None:
        self.state.setText(state)
        self.state.setStyleSheet("color:#c8372d; font-weight:bold" if error else "color:#2e7d32; font-weight:bold")
        self.output.setPlainText(text)

    def result_text(self) -> str:
        """What the output pane shows."""
        return self.output.toPlainText()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        """Closing abandons a call in progress."""
        self._ticker.stop()
        super().closeEvent(event)


class AddServerDialog(QtWidgets.QDialog):
    """Ask for a server endpoint to add by hand."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a server")
        self.endpoint = QtWidgets.QLineEdit("tcp://127.0.0.1:")
        self.endpoint.setFont(_mono_font())
        self.endpoint.setMinimumWidth(320)
        hint = QtWidgets.QLabel("The server's REP endpoint, e.g. tcp://lab-pc-3:8000 or ipc:///tmp/stage")
        hint.setStyleSheet("color:#555")
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QtWidgets.QFormLayout(self)
        form.addRow("&Endpoint:", self.endpoint)
        form.addRow(hint)
        form.addRow(buttons)

    def value(self) -> str:
        """The endpoint typed."""
        return self.endpoint.text().strip()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
