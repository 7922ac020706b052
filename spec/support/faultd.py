#!/usr/bin/env python3
"""Fault-injecting DynamoDB stand-in for spec/integration/faults_spec.lua (python3 stdlib only).

Speaks just enough of DynamoDB's JSON protocol (PutItem, GetItem, TransactWriteItems with Put,
keyed by PK+SK; PutItem's ConditionExpression "attribute_not_exists(PK)", with the stored item in
the error when ReturnValuesOnConditionCheckFailure is ALL_OLD) over HTTP/1.1 with keep-alive. Not here: signature checking, other operations, expressions beyond that one.
Once listening it prints one line, "PID PORT", then serves until killed or its parent exits.

Control (never consumes a fault, never counted as a DynamoDB request):
  POST /_control {"faults": ["throttle", "slow:500", ...]}  replace the script; one fault is
       consumed per DynamoDB request, in arrival order, then normal service resumes.
       Optional "reset_stats": true zeroes the counters, "clear": true empties the store.
  GET /_stats  "name value" lines: requests, connections (accepted since the reset), op.<Op>
       (requests seen), applied.<Op> (writes done), script_left, inflight (slow replies still
       sleeping), date_offset (last x-amz-date minus the server's clock, s), skew_checked and
       skew_ok (requests after a skew fault, and those whose x-amz-date was within 60 s of the
       Date the fault sent), key.<n> (access key id of the n-th request since the reset).
Faults: none (normal service), the CANNED error replies below, skew, reset, slow:MS, truncated,
malformed, badcrc, commit_then_reset; see Handler.dynamodb.

Proxy mode, `faultd.py --proxy http://127.0.0.1:PORT` (issue 12's fault runs): every DynamoDB
request goes to that upstream (DynamoDB Local) instead of the stand-in store, with faults drawn at
random (or taken from the script first, when one is set):
  throttle      400 ThrottlingException, not forwarded
  500           500 InternalServerError, not forwarded
  500_after     forwarded (the write happens), then 500 instead of the upstream's reply
  reset         the request is read, then the connection is reset; not forwarded
  reset_after   forwarded, the upstream replied, then the connection is reset
  slow:MS       (script only) waits MS milliseconds, then forwarded as usual
  POST /_control {"rates": {"throttle": 0.2, "500": 0.025, "500_after": 0.025, "reset": 0.02,
       "reset_after": 0.02}, "seed": 7} sets the probabilities (missing ones are 0) and the random
       seed. /_stats adds forwarded, upstream_errors (the proxy itself failed to reach the
       upstream: answered 502, should stay 0) and fault.<name> (faults injected)."""
import calendar
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import zlib
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "com.amazonaws.dynamodb.v20120810#"
LOCK = threading.Lock()
STATE = {"script": [], "store": {}, "stats": {}, "keys": [], "skew_date": None, "inflight": 0}
PROXY = {"upstream": None, "rates": {}, "rng": random.Random()}
PROXY_FAULTS = ("throttle", "500", "500_after", "reset", "reset_after")
UPSTREAM_IDLE = 5.0  # seconds an upstream connection may sit idle before a fresh one is opened
LOCAL = threading.local()


def fresh_stats():
    return {"requests": 0, "connections": 0, "skew_checked": 0, "skew_ok": 0}


STATE["stats"] = fresh_stats()


def bump(name, n=1):
    STATE["stats"][name] = STATE["stats"].get(name, 0) + n


def crc(body):
    return str(zlib.crc32(body) & 0xFFFFFFFF)


def amz_epoch(amz_date):
    """ "20260101T000000Z" -> epoch seconds, or None."""
    try:
        return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except (TypeError, ValueError):
        return None


def err_body(code, message, field="message", extra=None):
    out = {"__type": PREFIX + code, field: message}
    out.update(extra or {})
    return json.dumps(out).encode()


# Faults answered with a canned error reply: name -> (status, body).
CANNED = {
    "throttle": (400, err_body("ThrottlingException", "Rate exceeded")),
    "pte": (400, err_body("ProvisionedThroughputExceededException", "The level of configured "
                          "provisioned throughput for the table was exceeded.")),
    "http429": (429, b'{"message":"Too Many Requests"}'),
    "500": (500, err_body("InternalServerError", "The request processing has failed because of an "
                          "unknown error, exception or failure.", field="Message")),
    "503": (503, err_body("ServiceUnavailable", "Service unavailable")),
    "cond": (400, err_body("ConditionalCheckFailedException", "The conditional request failed")),
    "validation": (400, err_body("ValidationException",
                                 "One or more parameter values were invalid")),
    "canceled_conflict": (400, err_body(
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, TransactionConflict]",
        extra={"CancellationReasons": [
            {"Code": "None"},
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]})),
    "canceled_cond": (400, err_body(
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, ConditionalCheckFailed]",
        extra={"CancellationReasons": [
            {"Code": "None"},
            {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}]})),
    "expired_token": (400, err_body("ExpiredTokenException", "The security token included in the "
                                    "request is expired")),
    "unknown_html": (502, b"<html><head><title>502 Bad Gateway</title></head>"
                          b"<body><h1>502 Bad Gateway</h1></body></html>"),
}


def item_key(attrs):
    return json.dumps({"PK": attrs.get("PK"), "SK": attrs.get("SK")}, sort_keys=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with LOCK:
            bump("connections")

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=(), date=None, length=None, crc32=True):
        """Our own Date (send_response would add a second one) and, unless told, x-amz-crc32."""
        self.send_response_only(status)
        self.send_header("Date", date or formatdate(usegmt=True))
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("x-amzn-RequestId", "FAULTD%06d" % STATE["stats"]["requests"])
        if crc32:
            self.send_header("x-amz-crc32", crc(body))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def reset(self):
        """Close without answering, with a RST (SO_LINGER 0)."""
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(sock.detach())
        self.close_connection = True

    def do_GET(self):
        if self.path == "/_stats":
            with LOCK:
                lines = ["%s %s" % kv for kv in sorted(STATE["stats"].items())]
                lines.append("script_left %d" % len(STATE["script"]))
                lines.append("inflight %d" % STATE["inflight"])
                lines += ["key.%d %s" % (i + 1, k) for i, k in enumerate(STATE["keys"])]
            self.reply(200, ("\n".join(lines) + "\n").encode(), crc32=False)
        else:
            self.reply(404, b"no such route", crc32=False)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_control":
            ctl = json.loads(raw or b"{}")
            with LOCK:
                if "faults" in ctl:
                    STATE["script"] = list(ctl["faults"])
                if ctl.get("reset_stats"):
                    STATE["stats"] = fresh_stats()
                    STATE["keys"] = []
                    STATE["skew_date"] = None
                if ctl.get("clear"):
                    STATE["store"] = {}
                if "rates" in ctl:
                    PROXY["rates"] = {k: float(v) for k, v in ctl["rates"].items()}
                if "seed" in ctl:
                    PROXY["rng"] = random.Random(ctl["seed"])
            self.reply(200, b"ok\n", crc32=False)
            return
        self.dynamodb(raw)

    def dynamodb(self, raw):
        target = self.headers.get("X-Amz-Target") or ""
        op = target.rpartition(".")[2] or "?"
        amz_date = self.headers.get("X-Amz-Date")
        auth = self.headers.get("Authorization") or ""
        akid = auth.partition("Credential=")[2].partition("/")[0] or "-"
        with LOCK:
            bump("requests")
            bump("op." + op)
            STATE["keys"].append(akid)
            got = amz_epoch(amz_date)
            if got is not None:
                STATE["stats"]["date_offset"] = int(round(got - time.time()))
            if STATE["skew_date"] is not None:
                # the request after a skew fault must carry the server's clock, give or take 60 s
                bump("skew_checked")
                if got is not None and abs(got - STATE["skew_date"]) <= 60:
                    bump("skew_ok")
                STATE["skew_date"] = None
            fault = STATE["script"].pop(0) if STATE["script"] else None
            if PROXY["upstream"] is not None and fault is None:
                fault = draw_fault()

        if PROXY["upstream"] is not None:
            return self.proxied(fault, raw)
        if fault is None or fault == "none":
            return self.serve(op, raw)
        if fault in CANNED:
            status, body = CANNED[fault]
            return self.reply(status, body, crc32=fault != "unknown_html")
        if fault == "skew":
            ahead = time.time() + 3600
            with LOCK:
                STATE["skew_date"] = ahead
            msg = ("Signature expired: %s is now earlier than %s (%s - 5 min.)" % (
                amz_date, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ahead - 300)),
                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ahead))))
            return self.reply(400, err_body("InvalidSignatureException", msg),
                              date=formatdate(ahead, usegmt=True))
        if fault == "reset":
            return self.reset()
        if fault.startswith("slow:"):
            with LOCK:
                STATE["inflight"] += 1
            try:
                time.sleep(int(fault[5:]) / 1000.0)
                return self.serve(op, raw)  # applied late, as a real server may do
            except OSError:  # the client timed out and hung up: the point of the fault
                self.close_connection = True
                return None
            finally:
                with LOCK:
                    STATE["inflight"] -= 1
        if fault == "truncated":
            body = b'{"Item":{"PK":{"S":"TENANT#truncated"},"SK":{"S":"x"}}}'
            self.reply(200, body[:20], length=len(body) + 100, crc32=False)
            self.close_connection = True
            return None
        if fault == "malformed":
            return self.reply(200, b'{"Item":{"PK":{"S":"oops"}', crc32=False)
        if fault == "badcrc":
            status, body = self.apply(op, raw)
            wrong = str((int(crc(body)) + 1) & 0xFFFFFFFF)
            return self.reply(status, body, headers=[("x-amz-crc32", wrong)], crc32=False)
        if fault == "commit_then_reset":
            self.apply(op, raw)  # applied, but the client never hears so
            return self.reset()
        return self.reply(500, err_body("InternalServerError", "faultd: unknown fault " + fault))

    def proxied(self, fault, raw):
        """Proxy mode: one request to the upstream, with the fault drawn for it."""
        if fault is not None:
            with LOCK:
                bump("fault." + fault)
        if fault in ("throttle", "500"):
            status, body = CANNED[fault]
            return self.reply(status, body)
        if fault == "reset":
            return self.reset()
        if fault is not None and fault.startswith("slow:"):
            time.sleep(int(fault[5:]) / 1000.0)  # a slow server: it still acts on the request
        try:
            status, body, headers = self.forward(raw)
        except (OSError, http.client.HTTPException) as e:
            with LOCK:
                bump("upstream_errors")
            return self.reply(502, err_body("InternalFailure", "faultd proxy: upstream failed: %s" % e))
        with LOCK:
            bump("forwarded")
        if fault == "500_after":
            status, body = CANNED["500"]
            return self.reply(status, body)
        if fault in ("reset_after", "commit_then_reset"):
            return self.reset()
        return self.reply(status, body, headers=headers)

    def forward(self, raw):
        """POSTs the request to the upstream on this thread's connection -> status, body, headers.
        Never re-sent here: a proxy that retried could apply a write twice on its own."""
        conn, last = getattr(LOCAL, "conn", None), getattr(LOCAL, "used", 0.0)
        if conn is not None and time.time() - last > UPSTREAM_IDLE:
            conn.close()
            conn = None
        if conn is None:
            host, port = PROXY["upstream"]
            conn = http.client.HTTPConnection(host, port, timeout=30)
            LOCAL.conn = conn
        skip = ("host", "connection", "content-length", "keep-alive", "transfer-encoding")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        try:
            conn.request("POST", self.path, body=raw, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except BaseException:
            conn.close()
            LOCAL.conn = None
            raise
        LOCAL.used = time.time()
        return resp.status, body, []  # reply() adds Date, x-amzn-RequestId and x-amz-crc32

    def serve(self, op, raw):
        status, body = self.apply(op, raw)
        self.reply(status, body)

    def apply(self, op, raw):
        """Normal service: (status, body)."""
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            return 400, err_body("SerializationException", "bad JSON")
        with LOCK:
            if op == "PutItem":
                item = req.get("Item") or {}
                k = item_key(item)
                if (req.get("ConditionExpression") == "attribute_not_exists(PK)"
                        and k in STATE["store"]):
                    old = None
                    if req.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                        old = {"Item": json.loads(STATE["store"][k])}
                    return 400, err_body("ConditionalCheckFailedException",
                                         "The conditional request failed", extra=old)
                STATE["store"][k] = json.dumps(item)
                bump("applied.PutItem")
                return 200, b"{}"
            if op == "GetItem":
                stored = STATE["store"].get(item_key(req.get("Key") or {}))
                return 200, (b'{"Item":' + stored.encode() + b"}") if stored else b"{}"
            if op == "TransactWriteItems":
                for t in req.get("TransactItems") or []:
                    item = (t.get("Put") or {}).get("Item")
                    if item:
                        STATE["store"][item_key(item)] = json.dumps(item)
                bump("applied.TransactWriteItems")
                return 200, b"{}"
        return 400, err_body("UnknownOperationException", "faultd does not speak " + op)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out and hang up are the point of some faults


def draw_fault():
    """A fault at the configured rates, or None. Call with LOCK held."""
    x = PROXY["rng"].random()
    for name in PROXY_FAULTS:
        x -= PROXY["rates"].get(name, 0.0)
        if x < 0:
            return name
    return None


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--proxy":
        rest = sys.argv[2].split("://", 1)[-1].rstrip("/")
        host, _, port = rest.rpartition(":")
        PROXY["upstream"] = (host, int(port))
    elif len(sys.argv) != 1:
        sys.exit("usage: faultd.py [--proxy http://HOST:PORT]")
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    parent = os.getppid()
    print(os.getpid(), srv.server_address[1], flush=True)
    while os.getppid() == parent:  # the spec runner died without killing us: go too
        time.sleep(0.5)
    sys.exit(0)


if __name__ == "__main__":
    main()
