#!/usr/bin/env python3
"""A Region's front door for the two-Region simulator: a fault proxy in front of one DynamoDB
Local, switchable at run time (python3 stdlib only).

Usage: tcpfault.py --upstream http://127.0.0.1:PORT. Once listening it prints one line,
"PID PORT CONTROL_PORT", then serves until killed or its parent process exits. PORT keeps its
number for the life of the process (also across refuse -> pass).

Requests are HTTP/1.1 with Content-Length bodies (what DynamoDB clients send), read one by one
on keep-alive connections; the mode in force when a request has arrived decides:
  pass       forwarded to the upstream on a connection of this client connection's own; the
             reply goes back with a Content-Length
  delay      (with "ms": N) waits N ms, then as pass
  blackhole  connections are accepted and requests read, never answered (until the client hangs
             up; the connection stays open when the mode changes)
  503        every request answered 503 with DynamoDB's JSON error (ServiceUnavailable), not
             forwarded
  refuse     the listening socket is closed (a connect is refused) and every open client
             connection is reset (RST) at once; switching away listens again on the same port
Control, on 127.0.0.1:CONTROL_PORT:
  POST /_control {"mode": "pass" | "delay" | "blackhole" | "503" | "refuse", "ms": N}
  GET  /_stats   JSON: mode, delay_ms, connections (accepted), requests, forwarded, answered_503,
                 blackholed, reset (connections reset by refuse), upstream_errors (answered 502)"""
import http.client
import json
import select
import socket
import struct
import sys
import threading
import time

import jsonctl

MODES = ("pass", "delay", "blackhole", "503", "refuse")
LOCK = threading.Lock()
STATE = {"mode": "pass", "delay": 0.0, "listener": None, "port": None, "upstream": None,
         "conns": set()}
STATS = {"connections": 0, "requests": 0, "forwarded": 0, "answered_503": 0, "blackholed": 0,
         "reset": 0, "upstream_errors": 0}
BODY_503 = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                       "message": "tcpfault: the Region is unavailable (503 mode)"}).encode()
HOP = ("connection", "keep-alive", "transfer-encoding", "content-length", "host")


def bump(name):
    STATS[name] += 1


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s


def rst(sock):
    """Close with a RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def kick(sock):
    """From another thread: wake the connection's thread (its recv returns at once, SHUT_RD sends
    nothing) and make its close a RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def set_mode(mode, ms):
    with LOCK:
        STATE["mode"] = mode
        STATE["delay"] = max(0.0, float(ms or 0) / 1000.0)
        if mode == "refuse":
            if STATE["listener"] is not None:
                try:  # out of LISTEN at once, even while accept_loop's select still holds it
                    STATE["listener"].shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                STATE["listener"].close()
                STATE["listener"] = None
            for c in list(STATE["conns"]):
                kick(c)
                bump("reset")
        elif STATE["listener"] is None:
            STATE["listener"] = listen(STATE["port"])


def accept_loop():
    while True:
        with LOCK:
            lst = STATE["listener"]
        if lst is None:
            time.sleep(0.01)
            continue
        try:
            ready, _, _ = select.select([lst], [], [], 0.05)
            if not ready:
                continue
            conn, _ = lst.accept()
        except (OSError, ValueError):  # closed under us by refuse
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with LOCK:
            if STATE["mode"] == "refuse":  # accepted just before the switch
                rst(conn)
                continue
            STATE["conns"].add(conn)
            bump("connections")
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def read_request(conn, buf):
    """-> (head bytes, body bytes, rest of buf), or None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    return head, buf[:length], buf[length:]


def send(conn, status, reason, headers, body):
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    lines += ["%s: %s" % (k, v) for k, v in headers if k.lower() not in HOP]
    lines.append("Content-Length: %d" % len(body))
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def forward(upstream, head, body):
    """-> (status, reason, headers, body) from the upstream."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() not in HOP:
            headers[name.strip()] = value.strip()
    upstream.request(method, path, body=body, headers=headers)
    resp = upstream.getresponse()
    return resp.status, resp.reason, resp.getheaders(), resp.read()


def serve(conn):
    host, port = STATE["upstream"]
    upstream = http.client.HTTPConnection(host, port, timeout=60)
    buf = b""
    try:
        while True:
            got = read_request(conn, buf)
            if got is None:
                return
            head, body, buf = got
            with LOCK:
                mode, delay = STATE["mode"], STATE["delay"]
                bump("requests")
            if mode == "refuse":
                rst(conn)
                return
            if mode == "blackhole":
                with LOCK:
                    bump("blackholed")
                while conn.recv(65536):  # swallow everything until the client gives up
                    pass
                return
            if mode == "503":
                with LOCK:
                    bump("answered_503")
                send(conn, 503, "Service Unavailable", [("Content-Type", "application/x-amz-json-1.0"),
                                                        ("x-amzn-RequestId", "TCPFAULT503")], BODY_503)
                continue
            if mode == "delay":
                time.sleep(delay)
            try:
                status, reason, headers, rbody = forward(upstream, head, body)
            except (OSError, http.client.HTTPException) as e:
                upstream.close()
                with LOCK:
                    bump("upstream_errors")
                msg = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalFailure",
                                  "message": "tcpfault: upstream failed: %s" % e}).encode()
                send(conn, 502, "Bad Gateway", [("Content-Type", "application/x-amz-json-1.0")], msg)
                continue
            with LOCK:
                bump("forwarded")
            send(conn, status, reason, headers, rbody)
    except OSError:
        return
    finally:
        upstream.close()
        with LOCK:
            STATE["conns"].discard(conn)
        try:
            conn.close()
        except OSError:
            pass


class Control(jsonctl.Handler):
    def stats(self):
        with LOCK:
            return dict(STATS, mode=STATE["mode"], delay_ms=STATE["delay"] * 1000.0)

    def control(self, ctl):
        mode = ctl.get("mode")
        if mode not in MODES:
            return 400, {"error": "mode must be one of %s" % ", ".join(MODES)}
        try:
            set_mode(mode, ctl.get("ms"))
        except OSError as e:  # the port could not be bound again
            return 500, {"error": str(e)}
        return 200, {"ok": True}


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "--upstream":
        sys.exit("usage: tcpfault.py --upstream http://HOST:PORT")
    rest = sys.argv[2].split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    STATE["upstream"] = (host, int(port))
    lst = listen(0)
    STATE["listener"], STATE["port"] = lst, lst.getsockname()[1]
    threading.Thread(target=accept_loop, daemon=True).start()
    ctl = jsonctl.serve(Control)
    jsonctl.announce_and_wait(STATE["port"], ctl.server_address[1])


if __name__ == "__main__":
    main()
