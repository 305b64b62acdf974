"""Desktop programs of pizco_qt (installed as ``pizco_qt.apps``); importing starts nothing."""
