#!/usr/bin/env python3
"""Loopback stand-in for the container credentials endpoint and EC2 IMDSv2, for
spec/unit/credentials_spec.lua (python3 standard library only).

Usage: credserver.py. Once listening it prints one line, "PID PORT CLOSED_PORT" (CLOSED_PORT: a
port nothing listens on), then serves until killed or until its parent process exits.

Routes:
  GET  /container/...                             container credentials; 401 unless the
                                                  Authorization header equals state token
  PUT  /latest/api/token                          IMDSv2 token (needs the ttl header, else 400)
  GET  /latest/meta-data/iam/security-credentials/        role name      } 401 without a token
  GET  /latest/meta-data/iam/security-credentials/<role>  credentials    } this server issued
  POST /_control   JSON {"container": {...}, "imds": {...}} merged into the state (see DEFAULTS)
  POST /_reset     state back to DEFAULTS, counters to zero
  GET  /_counts    JSON counters: container, container_401, imds_token, imds_role, imds_creds, imds_401
State fields: status (reply with it instead), fail (answer the next N requests with 500), body (a raw
reply body instead of the JSON credentials), expiration (ISO-8601 text), and the credential fields."""
import copy
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULTS = {
    "container": {
        "token": "container-auth-token",
        "access_key_id": "AKIDCONTAINER",
        "secret_access_key": "container-secret",
        "session_token": "container-session",
        "expiration": "2100-01-01T00:00:00Z",
        "status": 200,
        "fail": 0,
        "body": None,
        "last_path": None,
        "last_authorization": None,
    },
    "imds": {
        "role": "test-role",
        "access_key_id": "AKIDIMDS",
        "secret_access_key": "imds-secret",
        "session_token": "imds-session",
        "expiration": "2100-01-01T00:00:00Z",
        "code": "Success",
        "token_status": 200,
        "role_status": 200,
        "creds_status": 200,
        "fail": 0,
        "body": None,
    },
}

LOCK = threading.Lock()
STATE = copy.deepcopy(DEFAULTS)
COUNTS = {}
TOKENS = set()
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"


def count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def creds_json(s, with_code):
    doc = {
        "AccessKeyId": s["access_key_id"],
        "SecretAccessKey": s["secret_access_key"],
        "Token": s["session_token"],
        "Expiration": s["expiration"],
    }
    if with_code:
        doc["Code"] = s["code"]
        doc["Type"] = "AWS-HMAC"
        doc["LastUpdated"] = "2026-01-01T00:00:00Z"
    return json.dumps(doc).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with LOCK:
            status, out = self.route(body)
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(out)

    do_PUT = do_POST = do_GET

    def route(self, body):
        path, method = self.path.split("?", 1)[0], self.command
        if path == "/_reset" and method == "POST":
            global STATE
            STATE = copy.deepcopy(DEFAULTS)
            COUNTS.clear()
            TOKENS.clear()
            return 200, b"{}"
        if path == "/_control" and method == "POST":
            for group, fields in json.loads(body or b"{}").items():
                STATE[group].update(fields)
            return 200, json.dumps(STATE).encode()
        if path == "/_counts":
            return 200, json.dumps(COUNTS).encode()
        if path.startswith("/container"):
            return self.container(path)
        if path == "/latest/api/token":
            return self.imds_token(method)
        if path.startswith(CREDS_PATH):
            return self.imds_get(path[len(CREDS_PATH):])
        return 404, b"no such route"

    def container(self, path):
        s = STATE["container"]
        count("container")
        s["last_path"] = self.path
        s["last_authorization"] = self.headers.get("Authorization")
        if s["fail"] > 0:
            s["fail"] -= 1
            return 500, b'{"message":"try again"}'
        if self.headers.get("Authorization") != s["token"]:
            count("container_401")
            return 401, b'{"message":"bad authorization token"}'
        if s["status"] != 200:
            return s["status"], b'{"message":"nope"}'
        return 200, (s["body"].encode() if s["body"] is not None else creds_json(s, False))

    def imds_token(self, method):
        s = STATE["imds"]
        count("imds_token")
        if method != "PUT":
            return 405, b""
        if s["fail"] > 0:
            s["fail"] -= 1
            return 500, b""
        if s["token_status"] != 200:
            return s["token_status"], b""
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return 400, b""
        token = "imds-token-%d" % (len(TOKENS) + 1)
        TOKENS.add(token)
        return 200, token.encode()

    def imds_get(self, role):
        s = STATE["imds"]
        count("imds_creds" if role else "imds_role")
        if self.headers.get("X-aws-ec2-metadata-token") not in TOKENS:
            count("imds_401")
            return 401, b""
        if not role:
            if s["role_status"] != 200:
                return s["role_status"], b""
            return 200, (s["role"] + "\n").encode()
        if role != s["role"]:
            return 404, b""
        if s["creds_status"] != 200:
            return s["creds_status"], b""
        return 200, (s["body"].encode() if s["body"] is not None else creds_json(s, True))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def main():
    server = Server(("127.0.0.1", 0), Handler)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parent = os.getppid()
    print(os.getpid(), server.server_address[1], closed_port, flush=True)
    while os.getppid() == parent:  # the spec runner died without killing us: go too
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
