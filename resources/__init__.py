"""Icons, .ui files, images and the demo's device file (installed as ``pizco_qt.resources``)."""
