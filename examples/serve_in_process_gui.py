"""Serve an object in a child process with its status window: python examples/serve_in_process_gui.py

The child process (``python -m pizco_qt``, started for you) serves a
MultiplyBy from example.py and shows the status window: endpoints, uptime,
requests, subscribers, emissions and a log. This script uses it through the
returned proxy, then waits until you close the status window (which stops the
server), or for --quit-after SECONDS.
"""
import argparse
import threading

from example import MultiplyBy
from pizco_qt import Server

parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
parser.add_argument('--quit-after', type=float, default=None, metavar='SECONDS',
                    help='stop the server and exit after SECONDS (default: when the window is closed)')
args = parser.parse_args()

proxy = Server.serve_in_process(MultiplyBy, args=(2,), gui=True)
print('serve_in_process_gui ready rep={}'.format(proxy._proxy_endpoint), flush=True)

changes = []
proxy.factor_changed.connect(lambda new, old: changes.append((old, new)))
for factor in (3, 4, 5):
    proxy.factor = factor
print('5 * 8 =', proxy.calculate(8))

closed = threading.Event()
proxy._proxy_connection.lost.connect(closed.set)   # the window was closed: the server stopped
try:
    closed.wait(args.quit_after)
finally:
    print('factor changes seen:', changes)
    proxy._proxy_stop_server()
