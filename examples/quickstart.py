"""Serve an object, use it through a proxy, get its signal: python examples/quickstart.py"""
import threading

from pizco_qt import Proxy, Server, Signal


class Thermometer:
    changed = Signal()

    def __init__(self):
        self.celsius = 20.0

    def heat(self, degrees):
        self.celsius += degrees
        self.changed.emit(self.celsius)


server = Server(Thermometer())       # serves on tcp://127.0.0.1:<a free port>
print('quickstart ready rep={}'.format(server.rep_endpoint))
proxy = Proxy(server.rep_endpoint)   # works the same from another process or machine
done = threading.Event()
proxy.changed.connect(lambda value: (print('changed to', value), done.set()))
proxy.heat(1.5)
done.wait(5)
print('celsius =', proxy.celsius)
proxy._proxy_stop_me()
server.stop()
