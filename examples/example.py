"""The seed scenario's served class: multiplies by a factor and signals its changes."""
from pizco_qt import Signal


class MultiplyBy(object):

    factor_changed = Signal()

    def __init__(self, factor):
        self._factor = factor

    def calculate(self, x):
        return x * self.factor

    @property
    def factor(self):
        return self._factor

    @factor.setter
    def factor(self, value):
        if self._factor == value:
            return
        self.factor_changed.emit(value, self._factor)
        self._factor = value
