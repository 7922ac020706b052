#!/usr/bin/env python3
"""Loopback HTTP/1.1 server for spec/unit/http_spec.lua (python3 standard library only).

Usage: httpd.py [CERT KEY]. Once listening it prints one line, "PID PORT CLOSED_PORT TLS_PORT"
(CLOSED_PORT: a port nothing listens on; TLS_PORT: 0 without CERT/KEY), then serves until killed
or until its parent process exits. Behaviour is chosen by path, see Handler.route."""
import itertools
import os
import socket
import ssl
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONN_IDS = itertools.count(1)


def crc(body):
    return str(zlib.crc32(body) & 0xFFFFFFFF)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a route says otherwise

    def setup(self):
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK cost 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_id = next(CONN_IDS)  # one per TCP connection: lets a spec prove reuse

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.route()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def reply(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Conn-Id", str(self.conn_id))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/echo":
            # "METHOD PATH\nName: value\n...\n\n" then the request body, verbatim
            head = ["%s %s" % (self.command, self.path)]
            head += ["%s: %s" % (k, v) for k, v in self.headers.items()]
            self.reply(200, ("\n".join(head) + "\n\n").encode() + body,
                       [("Content-Type", "text/plain")])
        elif path == "/raw":  # the request body back; ?crc=1 adds its x-amz-crc32
            self.reply(200, body, [("x-amz-crc32", crc(body))] if "crc" in query else [])
        elif path == "/crc-ok":
            out = b'{"Item":{"pk":{"S":"TENANT#acme"}}}'
            self.reply(200, out, [("X-Amz-Crc32", crc(out))])
        elif path == "/crc-bad":
            out = b'{"Item":{"pk":{"S":"TENANT#acme"}}}'
            self.reply(200, out, [("X-Amz-Crc32", str((int(crc(out)) + 1) & 0xFFFFFFFF))])
        elif path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000.0)
            self.reply(200, b"slow")
        elif path == "/close":  # answer, say so, then close
            self.reply(200, b"bye", [("Connection", "close")])
        elif path == "/drop":  # answer as if keeping the connection, then close it silently
            self.reply(200, b"dropped")
            self.close_connection = True
        elif path == "/empty":  # close without answering (FIN)
            self.close_connection = True
        elif path == "/reset":  # close without answering, with a RST (SO_LINGER 0)
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(sock.detach())
            self.close_connection = True
        elif path.startswith("/status/"):
            code = int(path[len("/status/"):])
            out = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}'
            self.reply(code, out, [("Content-Type", "application/x-amz-json-1.0")])
        elif path == "/headers":  # repeated, mixed-case and padded response headers
            self.reply(200, b"", [("X-Dup", "first"), ("x-dup", "second"),
                                  ("X-Amzn-RequestId", "REQ123"), ("X-Padded", "  a b  ")])
        elif path == "/chunked":
            parts = [b'{"Items":[', b'{"n":{"N":"1"}}', b",", b'{"n":{"N":"2"}}', b"]}"]
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Conn-Id", str(self.conn_id))
            self.send_header("x-amz-crc32", crc(b"".join(parts)))
            self.end_headers()
            for part in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.reply(404, b"no such route")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out and hang up are the point of some specs


class TLSServer(Server):
    context = None

    def finish_request(self, request, client_address):
        # Handshake in the connection's thread, not in accept(), so a refused cert stalls nothing.
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            request.close()


def main():
    servers = [Server(("127.0.0.1", 0), Handler)]
    tls_port = 0
    if len(sys.argv) == 3:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
        tls = TLSServer(("127.0.0.1", 0), Handler)
        tls.context = ctx
        servers.append(tls)
        tls_port = tls.server_address[1]
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    parent = os.getppid()
    print(os.getpid(), servers[0].server_address[1], closed_port, tls_port, flush=True)
    while os.getppid() == parent:  # the spec runner died without killing us: go too
        time.sleep(0.5)


if __name__ == "__main__":
    main()
