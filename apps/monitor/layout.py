"""How the monitor's window is built and what it remembers: widgets, actions, layout, settings.

``WindowLayout`` is a mixin of ``MonitorWindow``: ``_build()`` makes the widgets
and ``_restore_settings()``/``_store_settings()`` keep the window's geometry, its
splitters and the endpoints added by hand (QSettings, organisation ``pizco_qt``,
application ``pizco-monitor``, INI format).

Thread affinity: GUI thread.
"""
from __future__ import annotations

from typing import Any, List, Optional

from qtpy import QtCore, QtGui, QtWidgets

from .models import AttributeModel, ServerListModel
from .plots import PlotPanel
from .signal_models import SignalModel

Qt = QtCore.Qt

__all__ = ["WindowLayout", "icon", "row_list", "STYLE", "SETTINGS_ORG", "SETTINGS_APP"]

SETTINGS_ORG, SETTINGS_APP = "pizco_qt", "pizco-monitor"

STYLE = """
QMainWindow { background: #f3f5f8; }
QLabel#pane_title { font-weight: 600; color: #1f2d3d; padding: 2px 2px; }
QLabel#server_title { font-size: 15pt; font-weight: 600; color: #1f2d3d; }
QLabel#server_detail { color: #5b6572; }
QLabel#server_control { color: #5b6572; }
QLabel#server_control[locked="true"] { color: #b4531b; font-weight: 600; }
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


def _rows_of(view: Any, name: str, model: QtCore.QAbstractItemModel) -> Any:
    """``view`` showing ``model``: whole rows, one selected at a time, alternating colours."""
    view.setObjectName(name)
    view.setModel(model)
    view.setAlternatingRowColors(True)
    view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
    view.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
    return view


def _table(name: str, model: QtCore.QAbstractItemModel) -> QtWidgets.QTableView:
    view = _rows_of(QtWidgets.QTableView(), name, model)
    view.setShowGrid(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(24)
    view.horizontalHeader().setHighlightSections(False)
    view.horizontalHeader().setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    view.setTabKeyNavigation(False)
    view.setWordWrap(False)
    return view


def row_list(name: str, model: QtCore.QAbstractItemModel) -> QtWidgets.QTreeView:
    """A flat list view of ``model``: whole rows, one selected at a time, alternating colours."""
    view = _rows_of(QtWidgets.QTreeView(), name, model)
    view.setRootIsDecorated(False)
    view.setUniformRowHeights(True)
    view.setAllColumnsShowFocus(True)
    return view


class WindowLayout:
    """Mixin of MonitorWindow: builds the widgets and keeps the settings."""

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
        self.take_control_action = QtWidgets.QAction("&Take control", self)
        self.take_control_action.setObjectName("take_control")
        self.take_control_action.setToolTip("Take exclusive control of the selected server: the writes of "
                                            "every other client are refused until you release it")
        self.take_control_action.triggered.connect(self._take_control)
        self.release_control_action = QtWidgets.QAction("Re&lease control", self)
        self.release_control_action.setObjectName("release_control")
        self.release_control_action.setToolTip("Release exclusive control of the selected server")
        self.release_control_action.triggered.connect(self._release_control)
        for action in (self.take_control_action, self.release_control_action):
            action.setEnabled(False)

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
        menu.addActions([self.take_control_action, self.release_control_action])
        menu.addSeparator()
        quit_action = menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QtGui.QKeySequence.Quit)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.clear_action)

        # -- servers (left)
        self.servers = row_list("servers", self.server_model)
        self.servers.setContextMenuPolicy(Qt.ActionsContextMenu)
        self.servers.addActions([self.add_action, self.remove_action, self.refresh_action])
        header = self.servers.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.Stretch)
        header.setSectionResizeMode(5, QtWidgets.QHeaderView.ResizeToContents)
        header.setSectionResizeMode(6, QtWidgets.QHeaderView.ResizeToContents)
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
        self.server_control = QtWidgets.QLabel()
        self.server_control.setObjectName("server_control")
        self.server_control.setTextInteractionFlags(Qt.TextSelectableByMouse)
        texts.addWidget(self.server_title)
        texts.addWidget(self.server_detail)
        texts.addWidget(self.server_control)
        hl.addLayout(texts, 1)
        for action in (self.take_control_action, self.release_control_action):
            button = QtWidgets.QToolButton()
            button.setDefaultAction(action)
            button.setObjectName(f"{action.objectName()}_button")
            hl.addWidget(button, 0, Qt.AlignVCenter)

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
