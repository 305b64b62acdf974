"""Qt quick start, widgets bound to a served object: python examples/bind_quickstart.py [--quit-after S]"""
import sys

from qtpy import QtCore, QtWidgets

from example import MultiplyBy
from pizco_qt import Proxy, Server, bind

app = QtWidgets.QApplication(sys.argv[:1])
server = Server(MultiplyBy(2))  # usually in another process; served here to keep it short
proxy = Proxy(server.rep_endpoint)

window = QtWidgets.QWidget()
layout = QtWidgets.QHBoxLayout(window)
label, spin = QtWidgets.QLabel(), QtWidgets.QSpinBox()
layout.addWidget(label)
layout.addWidget(spin)
bind(label, proxy, 'factor', signal='factor_changed', fmt='factor = {}')  # shows the value
bind(spin, proxy, 'factor', signal='factor_changed')  # shows it and writes your edits
window.show()
print('bind_quickstart ready rep={}'.format(server.rep_endpoint), flush=True)

if '--quit-after' in sys.argv:  # used by the tests
    QtCore.QTimer.singleShot(int(float(sys.argv[-1]) * 1000), app.quit)
app.exec_()
proxy._proxy_stop_me()
server.stop()
