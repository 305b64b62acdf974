"""How bind() shows a value in each kind of widget and reads the user's edits back.

QtWidgets is imported only inside :func:`adapter_for`, which receives a
widget, so importing pizco_qt never imports it.

Thread affinity: the widget's thread (the GUI thread).
"""
from __future__ import annotations

from typing import Any, Optional

from .polling import same_value

class _Adapter:
    """How one kind of widget shows a value and reports the user's edits."""

    editable = False
    uses_fmt = True

    def __init__(self, widget: Any, fmt: Any) -> None:
        self.widget = widget
        self.fmt = fmt

    def text(self, value: Any) -> str:
        fmt = self.fmt
        if fmt is None:
            return "" if value is None else str(value)
        if callable(fmt):
            return str(fmt(value))
        if "{" in fmt:
            return fmt.format(value)
        return fmt % (value,)

    def show(self, value: Any) -> None:
        raise NotImplementedError

    def edited_signal(self) -> Any:
        return None

    def current(self) -> Any:
        raise NotImplementedError

    def read_only(self) -> bool:
        return not self.editable

    def unchanged(self) -> bool:
        """Whether the widget still shows what the server sent (nothing to write)."""
        return False

    def released_signal(self) -> Any:
        return None


class _LabelAdapter(_Adapter):
    def show(self, value: Any) -> None:
        self.widget.setText(self.text(value))


class _LCDAdapter(_Adapter):
    def show(self, value: Any) -> None:
        if self.fmt is None and isinstance(value, (int, float)) and not isinstance(value, bool):
            self.widget.display(value)
        else:
            self.widget.display(self.text(value))


class _ProgressAdapter(_Adapter):
    def show(self, value: Any) -> None:
        self.widget.setValue(int(round(float(value))))
        if self.fmt is not None:
            self.widget.setFormat(self.text(value))


class _LineEditAdapter(_Adapter):
    def __init__(self, widget: Any, fmt: Any) -> None:
        super().__init__(widget, fmt)
        self.editable = not widget.isReadOnly()
        self.kind: Optional[type] = None
        self.shown: Optional[str] = None

    def show(self, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            self.kind = type(value)
        self.shown = self.text(value)
        self.widget.setText(self.shown)

    def unchanged(self) -> bool:
        return self.widget.text() == self.shown

    def edited_signal(self) -> Any:
        return self.widget.editingFinished

    def read_only(self) -> bool:
        return self.widget.isReadOnly()

    def current(self) -> Any:
        text = self.widget.text()
        kind = self.kind
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{text!r} is not a boolean (true/false)")
        if kind in (int, float, complex):
            return kind(text.strip())
        return text


class _SpinAdapter(_Adapter):
    editable = True
    uses_fmt = False

    def __init__(self, widget: Any, fmt: Any, integer: bool) -> None:
        super().__init__(widget, fmt)
        self.integer = integer
        # typing "12" writes 12 once, not 1 then 12
        widget.setKeyboardTracking(False)

    def show(self, value: Any) -> None:
        self.widget.setValue(int(round(float(value))) if self.integer else float(value))

    def edited_signal(self) -> Any:
        return self.widget.valueChanged

    def read_only(self) -> bool:
        return self.widget.isReadOnly()

    def current(self) -> Any:
        return self.widget.value()


class _SliderAdapter(_SpinAdapter):
    def __init__(self, widget: Any, fmt: Any) -> None:
        _Adapter.__init__(self, widget, fmt)
        self.integer = True

    def read_only(self) -> bool:
        return False

    def released_signal(self) -> Any:
        return self.widget.sliderReleased


class _CheckAdapter(_Adapter):
    editable = True
    uses_fmt = False

    def show(self, value: Any) -> None:
        self.widget.setChecked(bool(value))

    def edited_signal(self) -> Any:
        return self.widget.toggled

    def current(self) -> Any:
        return self.widget.isChecked()


class _ComboAdapter(_Adapter):
    editable = True

    def __init__(self, widget: Any, fmt: Any) -> None:
        super().__init__(widget, fmt)
        self.mode = "text"

    def show(self, value: Any) -> None:
        combo = self.widget
        for i in range(combo.count()):
            data = combo.itemData(i)
            if data is not None and same_value(data, value):
                self.mode = "data"
                combo.setCurrentIndex(i)
                return
        index = combo.findText(self.text(value))
        if index >= 0:
            self.mode = "text"
            combo.setCurrentIndex(index)
            return
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < combo.count():
            self.mode = "index"
            combo.setCurrentIndex(value)
            return
        raise ValueError(f"{value!r} is not one of the combo box's items")

    def edited_signal(self) -> Any:
        return self.widget.currentIndexChanged

    def unchanged(self) -> bool:
        return self.widget.currentIndex() < 0  # cleared, not chosen

    def current(self) -> Any:
        combo = self.widget
        if self.mode == "data":
            return combo.currentData()
        if self.mode == "index":
            return combo.currentIndex()
        return combo.currentText()


def adapter_for(widget: Any, fmt: Any) -> _Adapter:
    from qtpy import QtWidgets as W

    if isinstance(widget, W.QDoubleSpinBox):
        adapter: _Adapter = _SpinAdapter(widget, fmt, integer=False)
    elif isinstance(widget, W.QSpinBox):
        adapter = _SpinAdapter(widget, fmt, integer=True)
    elif isinstance(widget, W.QAbstractSlider):
        adapter = _SliderAdapter(widget, fmt)
    elif isinstance(widget, W.QCheckBox) or (isinstance(widget, W.QAbstractButton) and widget.isCheckable()):
        adapter = _CheckAdapter(widget, fmt)
    elif isinstance(widget, W.QComboBox):
        adapter = _ComboAdapter(widget, fmt)
    elif isinstance(widget, W.QLineEdit):
        adapter = _LineEditAdapter(widget, fmt)
    elif isinstance(widget, W.QLabel):
        adapter = _LabelAdapter(widget, fmt)
    elif isinstance(widget, W.QLCDNumber):
        adapter = _LCDAdapter(widget, fmt)
    elif isinstance(widget, W.QProgressBar):
        adapter = _ProgressAdapter(widget, fmt)
    else:
        raise TypeError(
            f"bind() does not know how to show a value in a {type(widget).__name__}; supported: QLabel, "
            "QLCDNumber, QProgressBar, QLineEdit, QSpinBox, QDoubleSpinBox, QCheckBox (or a checkable "
            "button), QComboBox, QSlider (any QAbstractSlider)")
    if fmt is not None and not adapter.uses_fmt:
        raise TypeError(f"fmt does not apply to a {type(widget).__name__} (it shows numbers or states, "
                        "not text); use its own options (prefix, suffix, decimals)")
    if fmt is not None and not (callable(fmt) or isinstance(fmt, str)):
        raise TypeError(f"fmt must be a format string or a callable, not {type(fmt).__name__}")
    return adapter
