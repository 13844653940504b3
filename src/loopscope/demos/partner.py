"""The partner's rates API for the ``blocking`` demo: another service, in its own process, that
answers in 100 ms. Prints its port, then serves until its stdin closes (its parent is gone) or
SIGTERM; Ctrl-C, which reaches the whole process group, is left to the parent."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = 0.1


class Partner(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(DELAY)
        body = json.dumps({"EURUSD": 1.08, "GBPUSD": 1.27}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)

    def parent_gone() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=parent_gone, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
