#!/usr/bin/env python3
"""Test-only global-tables replicator between DynamoDB Local instances (python3 stdlib only).

Usage: replicator.py --region r1=http://127.0.0.1:P1 --region r2=http://127.0.0.1:P2
                     --table NAME [--table NAME2 ...] [--poll-ms 20]
Every table must exist in every Region with a stream (NEW_AND_OLD_IMAGES) and hold no items
written before that: an item no stream record shows is never replicated, and an apply that meets
it is dropped as superseded (a failed condition, below).
Once each Region's streams have been read once it prints one line, "PID PORT" (PORT: control),
then replicates until killed or its parent process exits.

How it replicates, like MREC global tables (see ../shared/spec/global-tables-notes.md):
- One poller thread per Region and table reads every shard of the table's stream (GetRecords every
  poll-ms; DescribeStream at least every second and on each drain; children after their parent;
  an expired or trimmed iterator is renewed after the last sequence number read).
- Each record read is stamped with this process's clock when it is read (monotonic within the
  process) and its Region: DynamoDB Local truncates ApproximateCreationDateTime to the minute, so
  the stamp is the write's order. Stamps live here, never on the items. Ties: Region name.
- One applier thread applies the records to the other Regions in stamp order, last writer wins:
  a record is skipped when the target's last known version (from the target's own stream or an
  earlier apply) is newer; otherwise PutItem (NewImage) or DeleteItem (key from PK/SK only: a
  REMOVE's Keys carry GSI keys too), conditional on the target still holding the item this process
  knows of (every attribute equal, or absent). A failed condition means the target has a write not
  read yet: it will be stamped later, so it wins, and this record is dropped (stats "superseded").
  A record whose image the target already holds is counted as applied without a request (DynamoDB
  writes no stream record for a write that changes nothing).
- Echoes (the records that this process's own applies cause) are recognised by key and image and
  dropped. A Region's stream is its write order, so when an echo comes after a local write of
  that Region which is newer than the applied record, the apply overwrote it (a race the
  condition cannot see: the same image seen by chance, absent -> written -> deleted, or a write
  that only added an attribute): that newer write is applied to the Region again ("repairs").

Control, on 127.0.0.1:PORT:
  POST /_control {"op": "pause"}          a partition: keep reading and stamping, stop applying
  POST /_control {"op": "heal"}           apply again (the backlog first, in stamp order)
  POST /_control {"op": "delay", "ms": N} apply each record no sooner than N ms after its stamp
  POST /_control {"op": "stall", "region": "r1"}   stop reading r1's stream (a slow consumer:
       r1's writes are not stamped yet and applies to r1 go on; opens the races the conditions and
       repairs are for); {"op": "unstall", "region": "r1"} reads it again
  POST /_control {"op": "drain", "timeout_ms": N}  blocks until every record written before the
       call (and every record seen since, until a quiet round) is read and applied: 200
       {"drained": true, "ms": ...}; 409 when paused with a backlog or a stream stalled; 504 on
       timeout (default 30 s)
  POST /_control {"op": "reset_stats"}
  GET  /_stats  JSON: applied {"r1->r2": n, ...} (by_table: the same per table), read {"r1": n},
       echoes {"r1": n}, superseded,
       repairs, noop (applied without a request), backlog, paused, delay_ms, stalled, errors, last_error,
       lag_ms {n, p50, p95, max} (stamp to the end of the apply, over applies since the reset)."""
import http.client
import json
import os
import sys
import threading
import time

import jsonctl

AUTH = ("AWS4-HMAC-SHA256 Credential=replicator/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0")  # DynamoDB Local checks the shape only
DESCRIBE_EVERY = 1.0
TRACE = (open(os.environ["REPLICATOR_TRACE"], "a", buffering=1)
         if os.environ.get("REPLICATOR_TRACE") else None)


def trace(*parts):
    """REPLICATOR_TRACE=FILE: one line per decision, for debugging a spec."""
    if TRACE is not None:
        TRACE.write("%.6f %s\n" % (time.time(), " ".join(str(p) for p in parts)))


LOCK = threading.Condition()


class DynamoError(Exception):
    def __init__(self, status, code, message):
        super().__init__("%s (%d): %s" % (code, status, message))
        self.status, self.code = status, code


class Region:
    """One DynamoDB Local endpoint; one keep-alive connection per thread."""

    def __init__(self, name, url):
        rest = url.split("://", 1)[-1].rstrip("/")
        host, _, port = rest.rpartition(":")
        self.name, self.host, self.port = name, host, int(port)
        self.local = threading.local()

    def call(self, op, body, streams=False):
        target = ("DynamoDBStreams_20120810." if streams else "DynamoDB_20120810.") + op
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target,
                   "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), "Authorization": AUTH}
        for attempt in (1, 2):  # once more on a stale keep-alive connection
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.local.conn = conn
            try:
                conn.request("POST", "/", body=json.dumps(body), headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        out = json.loads(raw or b"{}")
        if resp.status != 200:
            code = (out.get("__type") or "Unknown").rpartition("#")[2]
            raise DynamoError(resp.status, code, out.get("message") or out.get("Message") or "")
        return out


def canon(image):
    return None if image is None else json.dumps(image, sort_keys=True)


class Version:
    """One write as read from a Region's stream: its stamp, its item (None: deleted)."""
    __slots__ = ("stamp", "source", "table", "key", "image", "canon")

    def __init__(self, stamp, source, table, key, image):
        self.stamp, self.source, self.table, self.key, self.image = stamp, source, table, key, image
        self.canon = canon(image)

    def order(self):
        return (self.stamp, self.source)


class Replicator:
    def __init__(self, regions, tables, poll):
        self.regions, self.tables, self.poll = regions, tables, poll
        self.expect = {}   # (region, table, keycanon) -> Version the region holds, as far as we know
        self.echoes = {}   # (region, table, keycanon) -> [(image canon, Version)] applies not read back yet
        self.queue = []    # [(Version, target region)] in stamp order
        self.paused, self.delay = False, 0.0
        self.stalled = set()  # Regions whose streams are not read for now
        self.inflight = 0
        self.last_stamp = 0.0
        self.last_activity = 0.0
        self.cycles = {}   # (region, table) -> start time of the last completed poll cycle
        self.drainers = 0
        self.reset_stats()

    def reset_stats(self):
        self.stats = {"applied": {}, "by_table": {}, "read": {}, "echoes": {}, "superseded": 0, "repairs": 0,
                      "noop": 0, "errors": 0, "last_error": None}
        self.lags = []

    def bump(self, group, name):
        self.stats[group][name] = self.stats[group].get(name, 0) + 1

    def stamp(self):
        t = max(time.time(), self.last_stamp + 1e-6)
        self.last_stamp = t
        return t

    # ------------------------------------------------------------------ reading

    def observe(self, region, table, rec):
        """One stream record (called in stream order per shard), with LOCK held."""
        d = rec.get("dynamodb") or {}
        keys = d.get("Keys") or {}
        key = {"PK": keys.get("PK"), "SK": keys.get("SK")}
        kc = canon(key)
        image = None if rec.get("eventName") == "REMOVE" else d.get("NewImage")
        ic = canon(image)
        self.bump("read", region)
        self.last_activity = time.time()
        slot = (region, table, kc)
        pending = self.echoes.get(slot) or []
        for i, (img, v) in enumerate(pending):
            if img == ic:
                del pending[i]
                if not pending:
                    del self.echoes[slot]
                self.bump("echoes", region)
                trace("echo", region, kc, "seq", d.get("SequenceNumber"), "image", ic)
                self.check_echo(region, slot, v)
                return
        v = Version(self.stamp(), region, table, key, image)
        trace("read", region, kc, "seq", d.get("SequenceNumber"), "stamp %.6f" % v.stamp, "image", ic,
              "old", canon(d.get("OldImage")))
        self.expect[slot] = v
        for other in self.regions:
            if other != region:
                self.queue.append((v, other))
        LOCK.notify_all()

    def check_echo(self, region, slot, v):
        """Our apply of v reached region's stream, so region now holds v. Records before it in
        the stream were written before it: if one was a local write newer than v (the condition
        saw the same image by chance, e.g. absent -> written -> deleted again), v overwrote the
        newer write, which must win: apply it to region again."""
        cur = self.expect.get(slot)
        if cur is not None and cur is not v and cur.source == region and cur.order() > v.order():
            self.expect[slot] = v
            self.queue.append((cur, region))
            self.queue.sort(key=lambda e: e[0].order())
            self.stats["repairs"] += 1
            trace("repair", region, slot[2], "%.6f" % cur.stamp)
            LOCK.notify_all()

    def poller(self, region, table, ready):
        shards = {}  # id -> {"it", "seq", "done", "parent"}
        arn, last_describe = None, 0.0
        while True:
            start = time.time()
            with LOCK:
                stalled = region.name in self.stalled
            if stalled:
                time.sleep(self.poll)
                continue
            try:
                if arn is None:
                    desc = region.call("DescribeTable", {"TableName": table})["Table"]
                    arn = desc.get("LatestStreamArn")
                    if not arn:
                        raise DynamoError(400, "NoStream", "table %s has no stream" % table)
                with LOCK:
                    drain = self.drainers > 0
                if drain or start - last_describe >= DESCRIBE_EVERY:
                    self.describe(region, arn, shards)
                    last_describe = start
                for sid in sorted(shards):
                    self.read_shard(region, table, arn, sid, shards)
                with LOCK:
                    self.cycles[(region.name, table)] = start
                    LOCK.notify_all()
                if ready is not None:
                    ready.set()
                    ready = None
            except Exception as e:  # noqa: BLE001 -- a poller must outlive any bad reply
                with LOCK:
                    self.stats["errors"] += 1
                    self.stats["last_error"] = "%s %s: %s" % (region.name, table, e)
                if isinstance(e, DynamoError) and e.code == "ResourceNotFoundException":
                    arn = None
                time.sleep(0.2)
            time.sleep(max(0.0, self.poll - (time.time() - start)))

    def describe(self, region, arn, shards):
        body = {"StreamArn": arn}
        while True:
            out = region.call("DescribeStream", body, streams=True)["StreamDescription"]
            for s in out.get("Shards") or []:
                if s["ShardId"] not in shards:
                    shards[s["ShardId"]] = {"it": None, "seq": None, "done": False,
                                            "parent": s.get("ParentShardId")}
            last = out.get("LastEvaluatedShardId")
            if not last:
                return
            body = {"StreamArn": arn, "ExclusiveStartShardId": last}

    def read_shard(self, region, table, arn, sid, shards):
        sh = shards[sid]
        parent = shards.get(sh["parent"]) if sh["parent"] else None
        if sh["done"] or (parent is not None and not parent["done"]):
            return
        while True:
            if sh["it"] is None:
                req = {"StreamArn": arn, "ShardId": sid, "ShardIteratorType": "TRIM_HORIZON"}
                if sh["seq"] is not None:
                    req.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=sh["seq"])
                sh["it"] = region.call("GetShardIterator", req, streams=True)["ShardIterator"]
            try:
                out = region.call("GetRecords", {"ShardIterator": sh["it"]}, streams=True)
            except DynamoError as e:
                if e.code in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                    sh["it"] = None
                    continue
                raise
            records = out.get("Records") or []
            if records:
                with LOCK:
                    for rec in records:
                        self.observe(region.name, table, rec)
                sh["seq"] = records[-1]["dynamodb"]["SequenceNumber"]
            sh["it"] = out.get("NextShardIterator")
            if sh["it"] is None:
                sh["done"] = True
                return
            if not records:
                return

    # ------------------------------------------------------------------ applying

    def applier(self):
        while True:
            with LOCK:
                while True:
                    if self.queue and not self.paused:
                        due = self.queue[0][0].stamp + self.delay
                        wait = due - time.time()
                        if wait <= 0:
                            break
                        LOCK.wait(wait)
                    else:
                        LOCK.wait()
                v, target = self.queue.pop(0)
                self.inflight += 1
                try:
                    self.apply(v, target)
                except Exception as e:  # noqa: BLE001 -- kept at the head, tried again
                    self.stats["errors"] += 1
                    self.stats["last_error"] = "apply to %s: %s" % (target, e)
                    self.queue.insert(0, (v, target))
                    LOCK.wait(0.05)
                finally:
                    self.inflight -= 1
                    self.last_activity = time.time()
                    LOCK.notify_all()

    def apply(self, v, target):
        """Makes target hold v unless it holds something newer. LOCK held (the pollers wait, so
        what they read is ordered against this apply)."""
        slot = (target, v.table, canon(v.key))
        cur = self.expect.get(slot)
        if cur is v:
            return
        if cur is not None and cur.order() > v.order():
            self.stats["superseded"] += 1
            trace("skip", target, slot[2], "%.6f older than %.6f" % (v.stamp, cur.stamp))
            return
        prior = cur.image if cur is not None else None
        direction = "%s->%s" % (v.source, target) if v.source != target else "repair->" + target
        if canon(prior) == v.canon:
            self.expect[slot] = v
            self.stats["noop"] += 1
            self.done(v, direction)
            return
        names, values, cond = {}, {}, []
        if prior is None:
            cond.append("attribute_not_exists(#k)")
            names["#k"] = "PK"
        else:
            for i, (name, value) in enumerate(sorted(prior.items())):
                names["#a%d" % i] = name
                values[":v%d" % i] = value
                cond.append("#a%d = :v%d" % (i, i))
        body = {"TableName": v.table, "ConditionExpression": " AND ".join(cond),
                "ExpressionAttributeNames": names}
        if values:
            body["ExpressionAttributeValues"] = values
        if v.image is not None:
            body["Item"] = v.image
        else:
            body["Key"] = v.key
        entry = (v.canon, v)
        self.echoes.setdefault(slot, []).append(entry)
        try:
            self.regions[target].call("PutItem" if v.image is not None else "DeleteItem", body)
        except DynamoError as e:
            pending = self.echoes.get(slot) or []
            if entry in pending:
                pending.remove(entry)
                if not pending:
                    del self.echoes[slot]
            if e.code != "ConditionalCheckFailedException":
                raise
            self.stats["superseded"] += 1  # an unread local write there: it is newer
            trace("condfail", target, slot[2], "%.6f" % v.stamp)
            return
        self.expect[slot] = v
        trace("applied", target, slot[2], "%.6f" % v.stamp, "image", v.canon,
              "prior", canon(prior) and canon(prior)[:60])
        self.done(v, direction)

    def done(self, v, direction):
        self.bump("applied", direction)
        per = self.stats["by_table"].setdefault(v.table, {})
        per[direction] = per.get(direction, 0) + 1
        self.lags.append((time.time() - v.stamp) * 1000.0)

    # ------------------------------------------------------------------ control

    def drain(self, timeout):
        deadline = time.time() + timeout
        with LOCK:
            if self.paused and self.queue:
                return 409, {"drained": False, "error": "paused with %d records waiting" % len(self.queue)}
            if self.stalled:
                return 409, {"drained": False, "error": "stalled: " + ", ".join(sorted(self.stalled))}
            self.drainers += 1
            try:
                t0 = time.time()
                while True:
                    mark = time.time()
                    while not (all(self.cycles.get((r, t), 0.0) > mark
                                   for r in self.regions for t in self.tables)
                               and not self.queue and self.inflight == 0):
                        left = deadline - time.time()
                        if left <= 0:
                            return 504, {"drained": False, "error": "timeout", "backlog": len(self.queue),
                                         "last_error": self.stats["last_error"]}
                        if self.paused and self.queue:
                            return 409, {"drained": False, "error": "paused"}
                        LOCK.wait(min(left, 0.05))
                    if self.last_activity < mark:
                        return 200, {"drained": True, "ms": round((time.time() - t0) * 1000.0, 1)}
            finally:
                self.drainers -= 1

    def snapshot(self):
        with LOCK:
            out = json.loads(json.dumps(self.stats))
            lags = sorted(self.lags)
            out.update(backlog=len(self.queue), paused=self.paused, delay_ms=self.delay * 1000.0,
                       stalled=sorted(self.stalled))

        def pct(p):
            return round(lags[min(len(lags) - 1, int(p * len(lags)))], 2) if lags else None
        out["lag_ms"] = {"n": len(lags), "p50": pct(0.5), "p95": pct(0.95),
                         "max": round(lags[-1], 2) if lags else None}
        return out


REP = None


class Handler(jsonctl.Handler):
    def stats(self):
        return REP.snapshot()

    def control(self, ctl):
        op = ctl.get("op")
        if op == "drain":
            return REP.drain(float(ctl.get("timeout_ms", 30000)) / 1000.0)
        with LOCK:
            if op == "pause":
                REP.paused = True
            elif op == "heal":
                REP.paused = False
            elif op == "delay":
                REP.delay = max(0.0, float(ctl.get("ms", 0)) / 1000.0)
            elif op in ("stall", "unstall") and ctl.get("region") in REP.regions:
                (REP.stalled.add if op == "stall" else REP.stalled.discard)(ctl["region"])
            elif op == "reset_stats":
                REP.reset_stats()
            else:
                return 400, {"error": "unknown op %r" % op}
            LOCK.notify_all()
        return 200, {"ok": True}


def main():
    global REP
    regions, tables, poll = {}, [], 0.02
    args = sys.argv[1:]
    while args:
        flag = args.pop(0)
        if flag == "--region" and args and "=" in args[0]:
            name, _, url = args.pop(0).partition("=")
            regions[name] = Region(name, url)
        elif flag == "--table" and args:
            tables.append(args.pop(0))
        elif flag == "--poll-ms" and args:
            poll = float(args.pop(0)) / 1000.0
        else:
            sys.exit("usage: replicator.py --region NAME=URL --region NAME=URL --table NAME "
                     "[--table NAME ...] [--poll-ms N]")
    if len(regions) < 2 or not tables:
        sys.exit("replicator.py: needs two --region and at least one --table")
    REP = Replicator(regions, tables, poll)
    readies = []
    for region in regions.values():
        for table in tables:
            ready = threading.Event()
            readies.append(ready)
            threading.Thread(target=REP.poller, args=(region, table, ready), daemon=True).start()
    threading.Thread(target=REP.applier, daemon=True).start()
    for ready in readies:
        if not ready.wait(30):
            sys.exit("replicator.py: streams not readable: %s" % REP.stats["last_error"])
    srv = jsonctl.serve(Handler)
    jsonctl.announce_and_wait(srv.server_address[1])


if __name__ == "__main__":
    main()
