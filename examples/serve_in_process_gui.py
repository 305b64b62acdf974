"""Serve an object in a child process with its status window: python examples/serve_in_process_gui.py

The child process (``python -m pizco_qt``, started for you) serves a
MultiplyBy from example.py and shows the status window: endpoints, uptime,
requests, subscribers, emissions and a log. This script uses it through the
returned proxy, then waits until you close the status window (which stops the
server), or for --quit-after SECONDS.
"""
import argparse
import time

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

deadline = time.monotonic() + args.quit_after if args.quit_after is not None else None
try:
    # closing the status window stops the server: the proxy then declares it lost
    while proxy._proxy_connection.alive() and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.2)
finally:
    print('factor changes seen:', changes)
    proxy._proxy_stop_server()
