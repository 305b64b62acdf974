"""Use the MultiplyBy server: python examples/client.py [rep_endpoint]"""
import sys
import time

from pizco_qt import Proxy

proxy = Proxy(sys.argv[1] if len(sys.argv) > 1 else 'tcp://127.0.0.1:8000')

print('{} * {} = {}'.format(proxy.factor, 8, proxy.calculate(8)))


def on_factor_changed(new_value, old_value):
    print('The factor was changed from {} to {}'.format(old_value, new_value))
    print('{} * {} = {}'.format(proxy.factor, 8, proxy.calculate(8)))


proxy.factor_changed.connect(on_factor_changed)

for n in (3, 4, 5):
    proxy.factor = n
    time.sleep(.5)
