"""Two servers and one client that ties them together: python examples/two_servers.py

A stage and a camera are served separately (here in one process, usually in
two). The client connects the stage's signal to the camera: every time the
stage arrives somewhere, the camera takes a picture there.
"""
import threading

from pizco_qt import Proxy, Server, Signal


class Stage:
    arrived = Signal()

    def __init__(self):
        self.position = 0.0

    def move_to(self, position):
        self.position = position
        self.arrived.emit(position)


class Camera:
    def __init__(self):
        self.pictures = []

    def snap(self, label):
        self.pictures.append(label)
        return len(self.pictures)


stage_server = Server(Stage())
camera_server = Server(Camera(), 'tcp://127.0.0.1:0')
print('two_servers ready stage={} camera={}'.format(stage_server.rep_endpoint, camera_server.rep_endpoint),
      flush=True)

stage = Proxy(stage_server.rep_endpoint)
camera = Proxy(camera_server.rep_endpoint)
all_taken = threading.Event()


def take_picture(position):
    count = camera.snap('at {:.1f} mm'.format(position))
    if count == 3:
        all_taken.set()


stage.arrived.connect(take_picture)
for position in (1.0, 2.5, 4.0):
    stage.move_to(position)
all_taken.wait(10)
print('pictures:', camera.pictures)

for proxy in (stage, camera):
    proxy._proxy_stop_me()
for server in (stage_server, camera_server):
    server.stop()
