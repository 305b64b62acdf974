"""The pizco-monitor main window: live servers on the left, the selected one on the right.

Constructing ``MonitorWindow`` connects to the registry (``registry``, else
``PZC_REGISTRY``, else tcp://127.0.0.1:5777) and to the endpoints added by hand
(remembered with QSettings), and starts live updates. Nothing here waits for
the network: see controller.py.

Thread affinity: GUI thread.
"""
from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Dict, List, Optional

from qtpy import QtCore, QtGui, QtWidgets

from pizco_qt import config
from pizco_qt._qt import on_destroyed

from .controller import RegistryClient, ServerSession, connectable_endpoint, describe_error
from .dialogs import AddServerDialog, CallDialog
from .models import (CONNECTING, OFFLINE, ONLINE, STOPPED, AttributeModel, MethodModel, ServerEntry,
                     ServerListModel, SignalLogModel, SignalModel, _plain_annotations, is_number, state_icon)
from .plots import PlotPanel

Qt = QtCore.Qt

__all__ = ["MonitorWindow", "icon"]

#: Seconds a server that left the registry stays listed (greyed) before it is dropped.
STOPPED_KEEP_SECONDS = 30.0
#: Milliseconds between two updates of counters, log and plots.
TICK_MS = 100
SETTINGS_ORG, SETTINGS_APP = "pizco_qt", "pizco-monitor"

STYLE = """
QMainWindow { background: #f3f5f8; }
QLabel#pane_title { font-weight: 600; color: #1f2d3d; padding: 2px 2px; }
QLabel#server_title { font-size: 15pt; font-weight: 600; color: #1f2d3d; }
QLabel#server_detail { color: #5b6572; }
QFrame#header { background: #ffffff; border: 1px solid #d8dde4; border-radius: 6px; }
QAbstractItemView { background: #ffffff; alternate-background-color: #f6f8fb;
                    border: 1px solid #d8dde4; border-radius: 4px;
                    selection-background-color: #cfe3f7; selection-color: #10233a; }
QHeaderView::section { background: #eef1f5; border: none; border-bottom: 1px solid #d8dde4;
                       border-right: 1px solid #e3e7ec; padding: 3px 6px; color: #3a4655; font-weight: 600; }
QToolBar { background: #ffffff; border-bottom: 1px solid #d8dde4; spacing: 4px; padding: 3px; }
QStatusBar { background: #ffffff; border-top: 1px solid #d8dde4; }
QTabWidget::pane { border: none; }
"""


def icon(name: str) -> QtGui.QIcon:
    """An icon shipped in pizco_qt.resources/icons (an empty icon if missing)."""
    try:
        from importlib.resources import files

        data = (files("pizco_qt.resources") / "icons" / f"{name}.svg").read_bytes()
    except (OSError, ModuleNotFoundError):
        return QtGui.QIcon()
    pix = QtGui.QPixmap()
    pix.loadFromData(data, "SVG")
    return QtGui.QIcon(pix)


def _pane(title: str, widget: QtWidgets.QWidget, extra: Optional[QtWidgets.QWidget] = None) -> QtWidgets.QWidget:
    box = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(3)
    row = QtWidgets.QHBoxLayout()
    label = QtWidgets.QLabel(title)
    label.setObjectName("pane_title")
    label.setBuddy(widget)
    row.addWidget(label)
    row.addStretch(1)
    if extra is not None:
        row.addWidget(extra)
    layout.addLayout(row)
    layout.addWidget(widget, 1)
    box.title = label  # type: ignore[attr-defined]
    return box


def _table(name: str, model: QtCore.QAbstractItemModel) -> QtWidgets.QTableView:
    view = QtWidgets.QTableView()
    view.setObjectName(name)
    view.setModel(model)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
    view.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(24)
    view.horizontalHeader().setHighlightSections(False)
    view.horizontalHeader().setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    view.setTabKeyNavigation(False)
    view.setWordWrap(False)
    return view


class MonitorWindow(QtWidgets.QMainWindow):
    """Lists live servers and shows the selected one's attributes, methods and signals.

    Parameters
    ----------
    registry : str, optional
        The registry endpoint (default ``PZC_REGISTRY``, else tcp://127.0.0.1:5777).
    parent : QWidget, optional
        Parent widget.
    timeout : float, optional
        Seconds to wait for a server's answer (default: ``PZC_TIMEOUT`` capped at 5).
    proxy_kwargs : dict, optional
        Extra keyword arguments for every Proxy (``protocol``, ``curve``...).
    """

    #: Signal(str) -- a server's row was selected (its key: registry name or endpoint).
    server_selected = QtCore.Signal(str)
    #: Signal() -- the window closed and stopped its connections.
    closed = QtCore.Signal()

    def __init__(self, registry: Optional[str] = None, parent: Optional[QtWidgets.QWidget] = None, *,
                 timeout: Optional[float] = None, proxy_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(parent)
        self.registry_endpoint = registry or config.registry_endpoint()
        self.timeout = float(timeout) if timeout is not None else min(config.timeout(), 5.0)
        self.setWindowTitle("pizco-monitor")
        self.setWindowIcon(icon("pizco-monitor"))
        self.setObjectName("pizco_monitor")
        self.setStyleSheet(STYLE)
        self._proxy_kwargs = dict(proxy_kwargs or {})
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pizco-monitor")
        self.sessions: Dict[str, ServerSession] = {}
        self.current: Optional[ServerSession] = None
        self.call_dialog: Optional[CallDialog] = None
        self._shut = False

        self.server_model = ServerListModel(self)
        self.attribute_model = AttributeModel(self)
        self.method_model = MethodModel(self)
        self.signal_model = SignalModel(self)
        self.log_model = SignalLogModel(parent=self)
        self._build()
        self._restore_settings()

        self.attribute_model.edit_requested.connect(self._write)
        self.attribute_model.edit_rejected.connect(lambda text: self.status(text, error=True))
        self.attribute_model.watch_toggled.connect(self._watch_toggled)
        self.signal_model.subscribe_toggled.connect(self._subscribe_toggled)

        self._tick = QtCore.QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._poll = QtCore.QTimer(self)
        self._poll.timeout.connect(self._on_poll)
        self._set_poll_interval()
        self._prune = QtCore.QTimer(self)
        self._prune.setInterval(2000)
        self._prune.timeout.connect(self._prune_stopped)
        self._prune.start()

        self.registry = RegistryClient(self.registry_endpoint, self._executor, timeout=min(self.timeout, 2.0),
                                       proxy_kwargs=self._proxy_kwargs, parent=self)
        self.registry.state_changed.connect(self._registry_state)
        self.registry.listed.connect(self._registry_listed)
        self.registry.added.connect(self._registry_added)
        self.registry.removed.connect(self._registry_removed)
        self.registry.start()
        for endpoint in self._saved_endpoints():
            self.add_endpoint(endpoint, remember=False)
        self._show_server(None)
        self.servers.setFocus()

    # ================================================================== building
    def _build(self) -> None:
        self.resize(1280, 820)
        # -- actions and toolbar
        self.add_action = QtWidgets.QAction(icon("add-server"), "&Add server\u2026", self)
        self.add_action.setShortcut(QtGui.QKeySequence.New)
        self.add_action.setToolTip("Add a server by its endpoint (Ctrl+N); remembered for next time")
        self.add_action.triggered.connect(self._ask_endpoint)
        self.remove_action = QtWidgets.QAction(icon("remove-server"), "&Remove server", self)
        self.remove_action.setShortcut(QtGui.QKeySequence.Delete)
        self.remove_action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        self.remove_action.setToolTip("Forget the selected server added by hand (Del)")
        self.remove_action.triggered.connect(self._remove_selected)
        self.refresh_action = QtWidgets.QAction(icon("refresh"), "Re&fresh", self)
        self.refresh_action.setShortcut(QtGui.QKeySequence.Refresh)
        self.refresh_action.setToolTip("Read the attributes of the selected server again (F5)")
        self.refresh_action.triggered.connect(self.refresh)
        self.call_action = QtWidgets.QAction(icon("call"), "&Call method\u2026", self)
        self.call_action.setShortcut(QtGui.QKeySequence("Ctrl+E"))
        self.call_action.setToolTip("Call the selected method (Enter in the method list, Ctrl+E)")
        self.call_action.triggered.connect(self._call_selected)
        self.clear_action = QtWidgets.QAction(icon("clear-log"), "C&lear log", self)
        self.clear_action.setShortcut(QtGui.QKeySequence("Ctrl+L"))
        self.clear_action.triggered.connect(self.log_model.clear)

        self.auto_refresh = QtWidgets.QCheckBox("Auto-refresh every")
        self.auto_refresh.setObjectName("auto_refresh")
        self.auto_refresh.setToolTip("Read the selected server's attributes periodically (Ctrl+R)")
        self.auto_refresh.toggled.connect(self._set_poll_interval)
        QtWidgets.QShortcut(QtGui.QKeySequence("Ctrl+R"), self, self.auto_refresh.toggle)
        self.interval = QtWidgets.QDoubleSpinBox()
        self.interval.setObjectName("refresh_interval")
        self.interval.setRange(0.1, 3600.0)
        self.interval.setDecimals(1)
        self.interval.setSingleStep(0.5)
        self.interval.setValue(1.0)
        self.interval.setSuffix(" s")
        self.interval.valueChanged.connect(self._set_poll_interval)

        bar = self.addToolBar("Main")
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        bar.setIconSize(QtCore.QSize(20, 20))
        bar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        for action in (self.add_action, self.remove_action, None, self.refresh_action):
            bar.addSeparator() if action is None else bar.addAction(action)
        bar.addWidget(self.auto_refresh)
        bar.addWidget(self.interval)
        bar.addSeparator()
        bar.addAction(self.call_action)
        bar.addAction(self.clear_action)

        menu = self.menuBar().addMenu("&Server")
        menu.addActions([self.add_action, self.remove_action, self.refresh_action, self.call_action])
        menu.addSeparator()
        quit_action = menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QtGui.QKeySequence.Quit)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.clear_action)

        # -- servers (left)
        self.servers = QtWidgets.QTreeView()
        self.servers.setObjectName("servers")
        self.servers.setModel(self.server_model)
        self.servers.setRootIsDecorated(False)
        self.servers.setUniformRowHeights(True)
        self.servers.setAlternatingRowColors(True)
        self.servers.setAllColumnsShowFocus(True)
        self.servers.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.servers.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.servers.setContextMenuPolicy(Qt.ActionsContextMenu)
        self.servers.addActions([self.add_action, self.remove_action, self.refresh_action])
        header = self.servers.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.Stretch)
        header.setSectionResizeMode(5, QtWidgets.QHeaderView.ResizeToContents)
        em = self.fontMetrics().averageCharWidth()
        for col, chars in ((2, 24), (3, 10), (4, 7)):
            header.resizeSection(col, chars * em + 12)
        for col in (2, 3, 4):
            header.setSectionHidden(col, True)
        header.setContextMenuPolicy(Qt.ActionsContextMenu)
        for col, title in enumerate(ServerListModel.COLUMNS[1:], start=1):
            toggle = QtWidgets.QAction(f"Show {title.lower()}", header)
            toggle.setCheckable(True)
            toggle.setChecked(not header.isSectionHidden(col))
            toggle.toggled.connect(lambda on, col=col: header.setSectionHidden(col, not on))
            header.addAction(toggle)
        self.servers.selectionModel().currentRowChanged.connect(self._current_row_changed)
        left = _pane("&Servers", self.servers)
        self.servers_title = left.title
        left.setMinimumWidth(240)

        # -- header of the selected server
        self.header = QtWidgets.QFrame()
        self.header.setObjectName("header")
        self.state_badge = QtWidgets.QLabel()
        self.server_title = QtWidgets.QLabel()
        self.server_title.setObjectName("server_title")
        self.server_detail = QtWidgets.QLabel()
        self.server_detail.setObjectName("server_detail")
        self.server_detail.setTextInteractionFlags(Qt.TextSelectableByMouse)
        hl = QtWidgets.QHBoxLayout(self.header)
        hl.setContentsMargins(10, 6, 10, 6)
        hl.addWidget(self.state_badge)
        texts = QtWidgets.QVBoxLayout()
        texts.setSpacing(0)
        texts.addWidget(self.server_title)
        texts.addWidget(self.server_detail)
        hl.addLayout(texts, 1)

        # -- attributes, methods
        self.attributes = _table("attributes", self.attribute_model)
        self.attributes.setEditTriggers(QtWidgets.QAbstractItemView.DoubleClicked
                                        | QtWidgets.QAbstractItemView.EditKeyPressed
                                        | QtWidgets.QAbstractItemView.AnyKeyPressed)
        ah = self.attributes.horizontalHeader()
        ah.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        ah.setSectionResizeMode(AttributeModel.VALUE, QtWidgets.QHeaderView.Stretch)
        self.methods = _table("methods", self.method_model)
        self.methods.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.methods.activated.connect(lambda index: self.open_call_dialog(index.row()))
        mh = self.methods.horizontalHeader()
        mh.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        mh.setStretchLastSection(True)

        # -- signals, log, plot
        self.signals = _table("signals", self.signal_model)
        self.signals.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        sh = self.signals.horizontalHeader()
        sh.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        sh.setSectionResizeMode(SignalModel.ARGS, QtWidgets.QHeaderView.Stretch)
        for col, sample in ((1, "Count_"), (2, "999.9/s"), (3, "00:00:00.000")):
            sh.resizeSection(col, self.fontMetrics().horizontalAdvance(sample) + 16)
        sh.setSectionHidden(SignalModel.TIME, True)  # the log has the times; the header's menu shows it
        sh.setContextMenuPolicy(Qt.ActionsContextMenu)
        show_time = QtWidgets.QAction("Show the time of the last emission", sh)
        show_time.setCheckable(True)
        show_time.toggled.connect(lambda on: sh.setSectionHidden(SignalModel.TIME, not on))
        sh.addAction(show_time)
        self.log = _table("log", self.log_model)
        self.log.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        lh = self.log.horizontalHeader()
        lh.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        lh.setStretchLastSection(True)
        mono = QtGui.QFontMetrics(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont))
        lh.resizeSection(0, mono.horizontalAdvance("00:00:00.000") + 16)
        lh.resizeSection(1, self.fontMetrics().horizontalAdvance("Server____"))
        lh.resizeSection(2, self.fontMetrics().horizontalAdvance("signal name_"))
        self._log_fitted = False
        self.log.verticalHeader().setDefaultSectionSize(20)
        self._follow_log = True
        self.log.verticalScrollBar().valueChanged.connect(self._log_scrolled)
        self.plot = PlotPanel()

        self.attributes_pane = _pane("&Attributes", self.attributes)
        self.methods_pane = _pane("&Methods", self.methods)
        self.signals_pane = _pane("Si&gnals", self.signals)
        self.log_pane = _pane("Signal &log", self.log)
        self.plot_pane = _pane("&Plot", self.plot)
        self.plot_pane.setVisible(self.plot.available)

        top = QtWidgets.QSplitter(Qt.Horizontal)
        top.addWidget(self.attributes_pane)
        top.addWidget(self.methods_pane)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        sig_log = QtWidgets.QSplitter(Qt.Vertical)
        sig_log.addWidget(self.signals_pane)
        sig_log.addWidget(self.log_pane)
        bottom = QtWidgets.QSplitter(Qt.Horizontal)
        bottom.addWidget(sig_log)
        bottom.addWidget(self.plot_pane)
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 1)
        right_split = QtWidgets.QSplitter(Qt.Vertical)
        right_split.addWidget(top)
        right_split.addWidget(bottom)
        right_split.setStretchFactor(0, 1)
        right_split.setStretchFactor(1, 1)
        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(6)
        rl.addWidget(self.header)
        rl.addWidget(right_split, 1)
        main = QtWidgets.QSplitter(Qt.Horizontal)
        main.setObjectName("main_splitter")
        main.addWidget(left)
        main.addWidget(right)
        main.setStretchFactor(0, 0)
        main.setStretchFactor(1, 1)
        main.setSizes([340, 940])
        top.setSizes([540, 400])
        bottom.setSizes([560, 380])
        self._splitters = {"main": main, "top": top, "bottom": bottom, "right": right_split, "siglog": sig_log}
        container = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(container)
        cl.setContentsMargins(8, 8, 8, 4)
        cl.addWidget(main)
        self.setCentralWidget(container)

        # -- status bar
        self.registry_label = QtWidgets.QLabel()
        self.registry_label.setObjectName("registry_state")
        self.count_label = QtWidgets.QLabel()
        self.statusBar().addPermanentWidget(self.count_label)
        self.statusBar().addPermanentWidget(self.registry_label)
        self.setTabOrder(self.servers, self.attributes)
        self.setTabOrder(self.attributes, self.methods)
        self.setTabOrder(self.methods, self.signals)
        self.setTabOrder(self.signals, self.log)

    # ================================================================== settings
    def _settings(self) -> QtCore.QSettings:
        return QtCore.QSettings(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, SETTINGS_ORG, SETTINGS_APP)

    def _saved_endpoints(self) -> List[str]:
        value = self._settings().value("servers/endpoints", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or []) if str(v).strip()]

    def _save_endpoints(self) -> None:
        manual = [e.rep_endpoint for e in self.server_model.entries() if e.manual]
        s = self._settings()
        s.setValue("servers/endpoints", manual)
        s.sync()

    def _restore_settings(self) -> None:
        s = self._settings()
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        for name, splitter in self._splitters.items():
            state = s.value(f"window/splitter_{name}")
            if isinstance(state, QtCore.QByteArray):
                splitter.restoreState(state)
        interval = s.value("refresh/interval")
        try:
            if interval is not None:
                self.interval.setValue(float(interval))
        except (TypeError, ValueError):
            pass

    def _store_settings(self) -> None:
        s = self._settings()
        s.setValue("window/geometry", self.saveGeometry())
        for name, splitter in self._splitters.items():
            s.setValue(f"window/splitter_{name}", splitter.saveState())
        s.setValue("refresh/interval", self.interval.value())
        s.sync()

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
        session = ServerSession(key, endpoint, self._executor, self.timeout, self._proxy_kwargs, self)
        session.label = self.server_model.entry(key).name if self.server_model.entry(key) else key
        session.state_changed.connect(lambda state, detail, s=session: self._session_state(s, state, detail))
        session.described.connect(lambda desc, s=session: self._described(s, desc))
        session.values_read.connect(lambda values, took, s=session: self._values_read(s, values, took))
        session.message.connect(lambda text: self.status(text))
        session.subscription_changed.connect(
            lambda name, on, error, s=session: self._subscription_changed(s, name, on, error))
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
                           pid=info.get("pid", ""), started=info.get("started"))

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
                    and now - entry.gone_since > STOPPED_KEEP_SECONDS and entry.key != self._selected_key()):
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
        key = key if key is not None else (self.current.key if self.current is not None else None)
        entry = self.server_model.entry(key) if key is not None else None
        if entry is None:
            self.server_title.setText("No server selected")
            self.server_detail.setText("Servers registered with the registry appear on the left; "
                                       "add others with Ctrl+N.")
            self.state_badge.setPixmap(state_icon(STOPPED, 16).pixmap(16, 16))
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

    # ================================================================== describing and reading
    def _described(self, session: ServerSession, desc: Dict[str, Dict[str, Any]]) -> None:
        if session is self.current:
            self._fill(session, desc)
            self.refresh()

    def _fill(self, session: ServerSession, desc: Dict[str, Dict[str, Any]]) -> None:
        attrs = [(n, str(d.get("type", "")), bool(d.get("writable"))) for n, d in desc.items()
                 if d.get("kind") == "attribute"]
        methods = [(n, str(d.get("signature", "(...)")), str(d.get("doc", ""))) for n, d in desc.items()
                   if d.get("kind") == "method"]
        signals = [n for n, d in desc.items() if d.get("kind") == "signal" or d.get("maybe_signal")]
        old_values = {n: self.attribute_model.row(n) for n in self.attribute_model.names()}
        if [a[0] for a in attrs] != self.attribute_model.names():
            self.attribute_model.set_attributes(attrs, session.watched)
        else:
            for name, _t, _w in attrs:
                row = old_values.get(name)
                if row is not None:
                    row.type, row.writable = _t, _w
        shown = [self.method_model.method(i) for i in range(self.method_model.rowCount())]
        if [(n, _plain_annotations(sig), doc) for n, sig, doc in methods] != shown:
            self.method_model.set_methods(methods)
        if signals != self.signal_model.names():
            self.signal_model.set_signals(signals, set(session.sinks))
            for name, sink in session.sinks.items():
                self.signal_model.update(name, sink.count, None, None, sink.rate)
        self._fit_columns()
        self.attributes_pane.title.setText(
            f"&Attributes <span style='color:#8a8f98;font-weight:400'>{len(attrs)}</span>")
        self.methods_pane.title.setText(
            f"&Methods <span style='color:#8a8f98;font-weight:400'>{len(methods)}</span>")
        self.signals_pane.title.setText(
            f"Si&gnals <span style='color:#8a8f98;font-weight:400'>{len(signals)}</span>")

    def _fit_columns(self) -> None:
        """Size the small columns to their contents; the wide ones (values, arguments) stretch."""
        limit = self.fontMetrics().averageCharWidth() * 28
        for view, cols in ((self.attributes, (0, 2, 3, 4)), (self.methods, (0, 1)), (self.signals, (0,))):
            for col in cols:
                view.resizeColumnToContents(col)
                if view.columnWidth(col) > limit:
                    view.setColumnWidth(col, limit)

    def refresh(self) -> None:
        """Read the selected server's attribute values again (without waiting)."""
        session = self.current
        if session is None:
            return
        if not session.online:
            self.status(f"{session.label} is {session.state}; nothing to read", error=True)
            return
        names = self.attribute_model.readable()
        if names:
            session.read(names)

    def _values_read(self, session: ServerSession, values: Dict[str, Any], took: float) -> None:
        now = time.time()
        for name in session.watched:
            if name in values and values[name][0] == "return" and is_number(values[name][1]):
                self.plot.add(f"{session.label}.{name}", [(now, values[name][1])])
        if session is self.current:
            self.attribute_model.set_values(values)
            errors = sum(1 for kind, _ in values.values() if kind != "return")
            if len(values) > 1:
                text = f"{session.label}: read {len(values)} attribute(s) in {took * 1000:.0f} ms"
                if errors:
                    text += f", {errors} failed"
                self.status(text, error=bool(errors) and errors == len(values), timeout_ms=3000)

    def _set_poll_interval(self, *_: Any) -> None:
        self._poll.setInterval(int(self.interval.value() * 1000))
        watching = any(s.watched for s in self.sessions.values()) if hasattr(self, "sessions") else False
        if self.auto_refresh.isChecked() or watching:
            self._poll.start()
        else:
            self._poll.stop()

    def _on_poll(self) -> None:
        for session in list(self.sessions.values()):
            if session is self.current and self.auto_refresh.isChecked():
                self.refresh()
            elif session.watched and session.online:
                session.read(sorted(session.watched))

    def _watch_toggled(self, name: str, on: bool) -> None:
        session = self.current
        if session is None:
            return
        if on:
            session.watched.add(name)
            row = self.attribute_model.row(name)
            if row is not None and row.loaded and not is_number(row.value):
                self.status(f"{name} is a {row.type}, not a number: it cannot be plotted", error=True)
            else:
                self.status(f"Plotting {session.label}.{name} every {self.interval.value():g} s")
        else:
            session.watched.discard(name)
            self.plot.remove(f"{session.label}.{name}")
        self._set_poll_interval()

    # ================================================================== writing and calling
    def _write(self, name: str, value: Any) -> None:
        session = self.current
        if session is None:
            return
        self.status(f"Setting {session.label}.{name} = {value!r}\u2026")

        def done(exc: Optional[BaseException], session: ServerSession = session) -> None:
            if exc is None:
                self.status(f"Set {session.label}.{name} = {value!r}")
            else:
                self.status(f"Could not set {session.label}.{name}: {describe_error(exc)}", error=True)
            session.read([name])

        session.write(name, value, done)

    def _call_selected(self) -> None:
        index = self.methods.currentIndex()
        self.open_call_dialog(index.row() if index.isValid() else 0)

    def open_call_dialog(self, row: int) -> Optional[CallDialog]:
        """Open the call dialog of the method in ``row`` of the method list."""
        session = self.current
        method = self.method_model.method(row)
        if session is None or method is None:
            self.status("Select a server and one of its methods first", error=True)
            return None
        name, signature, doc = method
        if self.call_dialog is not None:
            try:
                self.call_dialog.close()
            except RuntimeError:
                pass
        dialog = CallDialog(session.label, name, signature, doc,
                            lambda args, kwargs: session.call(name, args, kwargs), session.watch_future, self)
        dialog.succeeded.connect(lambda result: self.status(f"{session.label}.{name}() returned"))
        dialog.failed.connect(lambda exc: self.status(f"{session.label}.{name}() raised {type(exc).__name__}",
                                                      error=True))
        on_destroyed(dialog, lambda: setattr(self, "call_dialog", None))  # not a lambda on destroyed: PyQt crash
        self.call_dialog = dialog
        dialog.show()
        return dialog

    # ================================================================== signals
    def _subscribe_toggled(self, name: str, on: bool) -> None:
        session = self.current
        if session is None:
            return
        if on:
            self.status(f"Subscribing to {session.label}.{name}\u2026")
            session.subscribe(name)
        else:
            session.unsubscribe(name)
            self.plot.remove(f"{session.label}.{name}")
            self.status(f"Unsubscribed from {session.label}.{name}")

    def _subscription_changed(self, session: ServerSession, name: str, on: bool, error: str) -> None:
        if session is self.current:
            self.signal_model.set_subscribed(name, on)
        if error:
            self.status(f"Could not subscribe to {session.label}.{name}: {error}", error=True)

    def _log_scrolled(self, value: int) -> None:
        self._follow_log = value >= self.log.verticalScrollBar().maximum() - 2

    def _on_tick(self) -> None:
        log_items = []
        for session in list(self.sessions.values()):
            for name, sink in list(session.sinks.items()):
                count, items = sink.drain()
                if session is self.current:
                    last = items[-1] if items else (None, None)
                    self.signal_model.update(name, count, last[1], last[0], sink.rate)
                if not items:
                    continue
                log_items.extend((t, session.label, name, args) for t, args in items)
                self._plot_emissions(session.label, name, items)
        if log_items:
            log_items.sort(key=lambda item: item[0])
            self.log_model.append(log_items)
            if not self._log_fitted:
                self._log_fitted = True
                for col in (1, 2):
                    self.log.resizeColumnToContents(col)
            if self._follow_log:
                self.log.scrollToBottom()
        if self.plot.available:
            self.plot.redraw()
        self.attribute_model.fade()

    def _plot_emissions(self, server: str, name: str, items: List[Any]) -> None:
        if not self.plot.available:
            return
        series: Dict[int, List[Any]] = {}
        width = 0
        for t, args in items:
            width = max(width, len(args))
            for i, arg in enumerate(args):
                if is_number(arg):
                    series.setdefault(i, []).append((t, arg))
        for i, samples in series.items():
            label = f"{server}.{name}" if width == 1 else f"{server}.{name}[{i}]"
            self.plot.add(label, samples)

    # ================================================================== closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        """Closing stops every connection of the window (the servers keep running)."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers, proxies and worker threads (idempotent)."""
        if self._shut:
            return
        self._shut = True
        try:
            self._store_settings()
        except Exception:  # settings are a convenience
            pass
        for timer in (self._tick, self._poll, self._prune):
            timer.stop()
        if self.call_dialog is not None:
            try:
                self.call_dialog.close()
            except RuntimeError:
                pass
        self.registry.close()
        for session in list(self.sessions.values()):
            session.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.closed.emit()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
