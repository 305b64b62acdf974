"""The pizco-monitor desktop window."""
