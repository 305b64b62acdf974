"""The monitor's server list: rows from the registry and by hand, their sessions, the selection.

``ServerListMixin`` is a mixin of ``MonitorWindow``: it keeps one row and one
``ServerSession`` per server, follows the registry's announcements, and fills
the panes when a row is selected.

Thread affinity: GUI thread.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from qtpy import QtCore, QtWidgets

from .controller import ServerSession, connectable_endpoint
from .dialogs import AddServerDialog
from .models import CONNECTING, OFFLINE, ONLINE, STOPPED, ServerEntry, state_icon

__all__ = ["ServerListMixin"]

class ServerListMixin:
    """Mixin of MonitorWindow: the server rows, their sessions and the selected one."""

    # ================================================================== servers
    def status(self, text: str, error: bool = False, timeout_ms: int = 6000) -> None:
        """Say what is happening in the status bar."""
        bar = self.statusBar()
        bar.setStyleSheet("QStatusBar { color: #c8372d; }" if error else "")
        bar.showMessage(text, timeout_ms)

    def add_endpoint(self, endpoint: str, remember: bool = True) -> Optional[ServerSession]:
        """Add a server by its REP endpoint (shown with the endpoint as its name)."""
        endpoint = endpoint.strip()
        if "://" not in endpoint or endpoint.endswith(":"):
            self.status(f"{endpoint!r} is not an endpoint (e.g. tcp://127.0.0.1:8000)", error=True)
            return None
        if self.server_model.entry(endpoint) is not None:
            self._select(endpoint)
            return self.sessions.get(endpoint)
        self.server_model.upsert(ServerEntry(key=endpoint, name=endpoint, rep_endpoint=endpoint, manual=True))
        session = self._open_session(endpoint, endpoint)
        if remember:
            self._save_endpoints()
            self.status(f"Added {endpoint}")
        self._update_counts()
        return session

    def _ask_endpoint(self) -> None:
        dialog = AddServerDialog(self)
        if dialog.exec_() == QtWidgets.QDialog.Accepted and dialog.value():
            self.add_endpoint(dialog.value())
            self._select(dialog.value())

    def _remove_selected(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        if not entry.manual and entry.state != STOPPED:
            self.status(f"{entry.name} comes from the registry; it leaves the list when it stops", error=True)
            return
        self.remove_server(entry.key)

    def remove_server(self, key: str) -> None:
        """Forget a server (and stop watching it)."""
        entry = self.server_model.entry(key)
        session = self.sessions.pop(key, None)
        if session is not None:
            if session is self.current:
                self.current = None
                self._show_server(None)
            self.plot.remove(session.label)
            session.close()
            session.deleteLater()
        self.server_model.remove(key)
        if entry is not None and entry.manual:
            self._save_endpoints()
            self.status(f"Removed {entry.name}")
        self._update_counts()

    def _open_session(self, key: str, endpoint: str) -> ServerSession:
        session = ServerSession(key, endpoint, self._executor, self.timeout, self._proxy_kwargs, self,
                                settings=self.settings)
        session.label = self.server_model.entry(key).name if self.server_model.entry(key) else key
        session.state_changed.connect(lambda state, detail, s=session: self._session_state(s, state, detail))
        session.described.connect(lambda desc, s=session: self._described(s, desc))
        session.values_read.connect(lambda values, took, s=session: self._values_read(s, values, took))
        session.message.connect(lambda text: self.status(text))
        session.subscription_changed.connect(
            lambda name, on, error, s=session: self._subscription_changed(s, name, on, error))
        session.control_changed.connect(lambda s=session: self._update_control() if s is self.current else None)
        self.sessions[key] = session
        session.connect_proxy()
        return session

    def _registry_state(self, state: str, detail: str) -> None:
        text = {"online": "registry \u25cf online", "offline": "registry \u25cb not reachable",
                "connecting": "registry \u2026"}.get(state, state)
        self.registry_label.setText(f" {text} ")
        self.registry_label.setToolTip(f"{self.registry_endpoint}\n{detail}")
        color = {"online": "#2e9d4f", "offline": "#c8372d"}.get(state, "#d99a1e")
        self.registry_label.setStyleSheet(f"color: {color}; padding: 0 6px;")
        if detail and state != "online":
            self.status(detail, error=state == "offline")
        elif state == "online":
            self.status(f"Connected to the registry at {self.registry_endpoint}")

    def _entry_from_registry(self, info: Dict[str, Any]) -> Optional[ServerEntry]:
        try:
            name = str(info["name"])
            endpoint = connectable_endpoint(str(info["rep_endpoint"]), str(info.get("host", "")))
        except (KeyError, TypeError):
            return None
        return ServerEntry(key=name, name=name, rep_endpoint=endpoint, cls=str(info.get("class", "")),
                           pub_endpoint=str(info.get("pub_endpoint", "")), host=str(info.get("host", "")),
                           pid=info.get("pid", ""), started=info.get("started"),
                           station=str(info.get("station") or ""))

    def _registry_added(self, info: Any) -> None:
        entry = self._entry_from_registry(info) if isinstance(info, dict) else None
        if entry is None:
            return
        old = self.server_model.entry(entry.key)
        session = self.sessions.get(entry.key)
        if old is not None and old.manual:
            return  # a row added by hand keeps its own session
        if session is not None and session.endpoint != entry.rep_endpoint:
            self.sessions.pop(entry.key)
            self.plot.remove(session.label)
            was_current = session is self.current
            session.close()
            session.deleteLater()
            session = None
            if was_current:
                self.current = None
        entry.state = session.state if session is not None else CONNECTING
        added = self.server_model.upsert(entry)
        if session is None:
            session = self._open_session(entry.key, entry.rep_endpoint)
            if self._selected_key() == entry.key:
                self._show_server(entry.key)
        if added:
            self.status(f"{entry.name} ({entry.cls or 'server'}) appeared at {entry.rep_endpoint}")
        if self.server_model.rowCount() == 1 and self._selected_key() is None:
            self._select(entry.key)
        self._update_counts()

    def _registry_removed(self, name: Any) -> None:
        entry = self.server_model.entry(str(name))
        if entry is None or entry.manual:
            return
        session = self.sessions.pop(entry.key, None)
        if session is not None:
            session.close()
            session.deleteLater()
            if session is self.current:
                self.current = None
        self.server_model.set_state(entry.key, STOPPED, "left the registry")
        if self._selected_key() == entry.key:
            self._show_server(entry.key)
        self.status(f"{entry.name} left the registry")
        self._update_counts()

    def _registry_listed(self, entries: List[Dict[str, Any]]) -> None:
        names = set()
        for info in entries:
            if isinstance(info, dict):
                self._registry_added(info)
                names.add(str(info.get("name")))
        for entry in list(self.server_model.entries()):
            if not entry.manual and entry.key not in names and entry.state != STOPPED:
                self._registry_removed(entry.key)

    def _prune_stopped(self) -> None:
        now = time.monotonic()
        for entry in list(self.server_model.entries()):
            if (entry.state == STOPPED and entry.gone_since is not None
                    and now - entry.gone_since > self.settings.monitor_keep_stopped and entry.key != self._selected_key()):
                self.remove_server(entry.key)

    def _session_state(self, session: ServerSession, state: str, detail: str) -> None:
        if self.sessions.get(session.key) is not session:
            return
        self.server_model.set_state(session.key, state, detail)
        if session is self.current:
            self._update_header()
            enabled = state == ONLINE
            for view in (self.attributes, self.methods, self.signals):
                view.setEnabled(enabled)
            if state == OFFLINE:
                self.status(f"{session.label} is offline: {detail}", error=True)
        self._update_counts()

    def _update_counts(self) -> None:
        entries = self.server_model.entries()
        online = sum(1 for e in entries if e.state == ONLINE)
        self.count_label.setText(f"{online} of {len(entries)} servers online")
        self.servers_title.setText(f"&Servers <span style='color:#8a8f98;font-weight:400'>{len(entries)}</span>")

    # ================================================================== selection
    def _selected_key(self) -> Optional[str]:
        index = self.servers.currentIndex()
        if not index.isValid():
            return None
        entry = self.server_model.entry_at(index.row())
        return entry.key if entry is not None else None

    def _selected_entry(self) -> Optional[ServerEntry]:
        key = self._selected_key()
        return self.server_model.entry(key) if key is not None else None

    def _select(self, key: str) -> None:
        row = self.server_model.row_of(key)
        if row >= 0:
            self.servers.setCurrentIndex(self.server_model.index(row, 0))

    def select_server(self, key: str) -> None:
        """Select the row of server ``key`` (a registry name, or an endpoint added by hand)."""
        self._select(key)

    def _current_row_changed(self, current: QtCore.QModelIndex, previous: QtCore.QModelIndex) -> None:
        entry = self.server_model.entry_at(current.row()) if current.isValid() else None
        self._show_server(entry.key if entry is not None else None)
        if entry is not None:
            self.server_selected.emit(entry.key)

    def _show_server(self, key: Optional[str]) -> None:
        session = self.sessions.get(key) if key is not None else None
        self.current = session
        self.remove_action.setEnabled(key is not None)
        self._update_header(key)
        self.attribute_model.clear()
        self.method_model.set_methods([])
        self.signal_model.set_signals([])
        if session is None:
            for view in (self.attributes, self.methods, self.signals):
                view.setEnabled(False)
            return
        for view in (self.attributes, self.methods, self.signals):
            view.setEnabled(session.online)
        if session.description is not None:
            self._fill(session, session.description)
        if session.online:
            session.describe()  # names may have changed; values are read when it answers
        self.status(f"Showing {session.label}" + ("" if session.online else f" ({session.state})"))

    def _update_header(self, key: Optional[str] = None) -> None:
        self._header_at = time.monotonic()
        key = key if key is not None else (self.current.key if self.current is not None else None)
        entry = self.server_model.entry(key) if key is not None else None
        if entry is None:
            self.server_title.setText("No server selected")
            self.server_detail.setText("Servers registered with the registry appear on the left; "
                                       "add others with Ctrl+N.")
            self.state_badge.setPixmap(state_icon(STOPPED, 16).pixmap(16, 16))
            self._update_control()
            return
        self.state_badge.setPixmap(state_icon(entry.state, 16).pixmap(16, 16))
        cls = f"  <span style='color:#5b6572;font-weight:400'>{entry.cls}</span>" if entry.cls else ""
        self.server_title.setText(f"{entry.name}{cls}")
        bits = [entry.rep_endpoint, entry.state + (f" ({entry.detail})" if entry.detail else "")]
        if entry.host or entry.pid:
            bits.insert(1, f"host {entry.host or '?'} pid {entry.pid or '?'}")
        if entry.started:
            bits.append("up " + _duration(time.time() - float(entry.started)))
        self.server_detail.setText("   \u00b7   ".join(bits))
        self._update_control()

    # ================================================================== exclusive control
    def _update_control(self) -> None:
        """The header's role and lock-holder line, and the Take control / Release actions."""
        session = self.current
        label = self.server_control
        if session is None or session.proxy is None:
            label.setText("")
            label.setToolTip("")
            self.take_control_action.setEnabled(False)
            self.release_control_action.setEnabled(False)
            return
        label.setText(session.control_text())
        blocked = session.blocked_reason()
        label.setToolTip(blocked or "You may write to this server")
        locked = session.holder is not None and not session.holds_control
        if label.property("locked") != ("true" if locked else "false"):
            label.setProperty("locked", "true" if locked else "false")
            label.style().unpolish(label)
            label.style().polish(label)
        self.take_control_action.setEnabled(session.lockable and session.role != "observer"
                                            and not session.holds_control)
        self.release_control_action.setEnabled(session.holds_control)

    def _take_control(self) -> None:
        if self.current is not None:
            self.status(f"Taking control of {self.current.label}\u2026")
            self.current.take_control()

    def _release_control(self) -> None:
        if self.current is not None:
            self.current.release_control()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
