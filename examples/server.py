"""Serve a MultiplyBy(2): python examples/server.py [rep_endpoint]"""
import sys

from example import MultiplyBy
from pizco_qt import Server

endpoint = sys.argv[1] if len(sys.argv) > 1 else 'tcp://127.0.0.1:8000'
server = Server(MultiplyBy(2), endpoint)
print('pizco-server ready rep={} pub={}'.format(server.rep_endpoint, server.pub_endpoint), flush=True)
server.serve_forever()
