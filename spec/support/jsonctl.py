"""The control side the spec helpers share (replicator.py, tcpfault.py): a JSON-over-HTTP handler
(GET /_stats, POST /_control), a threading server, and the "PID PORT..." start line followed by a
wait that ends when the spec runner that started us is gone. Standard library only."""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    """Subclasses define stats() -> dict and control(dict) -> (status, dict)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/_stats":
            return self.reply(404, {"error": "no such route"})
        return self.reply(200, self.stats())

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/_control":
            return self.reply(404, {"error": "no such route"})
        try:
            ctl = json.loads(raw or b"{}")
        except ValueError:
            return self.reply(400, {"error": "bad JSON"})
        return self.reply(*self.control(ctl))


class Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(handler):
    """Starts the control server on a free loopback port -> the server."""
    srv = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def announce_and_wait(*ports):
    """Prints "PID PORT..." (the spec's support module reads it), then returns never: exits once the
    process that started us (our parent) is gone, so a killed spec runner leaves nothing behind."""
    parent = os.getppid()
    print(os.getpid(), *ports, flush=True)
    while os.getppid() == parent:
        time.sleep(0.5)
    sys.exit(0)
