"""A served method that returns a Future: python examples/future_method.py [rep_endpoint]

The call returns at once; the result arrives when the server-side Future
finishes. cancel() on the client cancels the server-side Future too.
"""
import concurrent.futures
import sys
import time

from pizco_qt import Proxy, Server


class Camera:
    """Exposures run one at a time on the camera's own thread."""

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def expose(self, seconds):
        """Start an exposure; returns a Future of the image."""
        return self._pool.submit(self._expose, seconds)

    def _expose(self, seconds):
        if seconds <= 0:
            raise ValueError('the exposure time must be positive')
        time.sleep(seconds)
        return [[0, 1, 0], [1, 2, 1], [0, 1, 0]]

    def close(self):
        self._pool.shutdown(cancel_futures=True)


camera = Camera()
server = Server(camera, sys.argv[1] if len(sys.argv) > 1 else 'tcp://127.0.0.1:0')
print('future_method ready rep={} pub={}'.format(server.rep_endpoint, server.pub_endpoint), flush=True)
proxy = Proxy(server.rep_endpoint)

image = proxy.expose(0.3)
print('exposing, done:', image.done())
print('image:', image.result(timeout=10))

try:
    proxy.expose(0).result(timeout=10)
except ValueError as exc:
    print('failed:', exc)

first, second = proxy.expose(0.3), proxy.expose(0.3)
print('second cancelled:', second.cancel())
print('first still arrives:', first.result(timeout=10) is not None)

proxy._proxy_stop_me()
server.stop()
camera.close()
