"""The server status window (serve_in_process(gui=True), pizco-server -g)."""
