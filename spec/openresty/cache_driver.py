#!/usr/bin/env python3
"""The configuration cache checks of scripts/openresty-test, against the OpenResty example's nginx
(python3 stdlib only). Prints one line per check, "ok<TAB>NAME" or "FAIL<TAB>NAME<TAB>WHY", and
lines starting with "#" for figures; scripts/openresty-test counts the checks.

  cache_driver.py concurrent on|off BASE TEST_BASE FAULTD_BASE N COLD_A COLD_B
      nginx has ONE worker and reaches DynamoDB Local through spec/support/faultd.py --proxy at
      FAULTD_BASE, which counts the DynamoDB requests by operation. One GET /login?client_id=COLD_A
      gives what one request for a client nginx never read costs; then N requests for COLD_B (also
      never read), sent at once on N open connections while faultd holds the first DynamoDB
      request back 300 ms, so all N miss the same cold keys together. With the cache they must
      cost exactly what one request costs (one read per cold key); without it, N times that.
  cache_driver.py mutation BASE TEST_BASE
      ONE worker, cache on: a handler (/_t/cache/mutate) changes the records its cached reads
      returned; the next GET /login must show them unchanged, from the cache.
  cache_driver.py workers shared|local BASE TEST_BASE TTL
      TWO workers, cache on. Kept-alive connections reach a chosen worker (each reply names its
      worker, X-Worker). Both workers cache the tenant; a rename goes through worker A's adapters;
      the next GET /login in worker B must show the new name with shared (the generations in
      lua_shared_dict), and must still show the old one with local, until its entry's TTL ends.

BASE is the example (http://127.0.0.1:PORT), TEST_BASE the server with /_t/cache/* (servers.conf).
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

FAILED = False


def check(name, cond, why=""):
    global FAILED
    if cond:
        print("ok\t%s" % name)
    else:
        FAILED = True
        print("FAIL\t%s\t%s" % (name, why))
    sys.stdout.flush()


def info(msg):
    print("# " + msg)
    sys.stdout.flush()


class Conn:
    """One kept-alive connection (so one nginx worker) and the worker that answers on it."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.worker = None

    def call(self, path, method="GET", body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.c.request(method, path, body=body, headers=headers)
        r = self.c.getresponse()
        data = r.read()
        self.worker = r.getheader("X-Worker")
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        return r.status, doc, data

    def close(self):
        self.c.close()


def stats(conn):
    status, doc, raw = conn.call("/_t/cache/stats")
    if status != 200 or not isinstance(doc, dict):
        raise RuntimeError("/_t/cache/stats: HTTP %d %r" % (status, raw[:200]))
    return doc


def login_page(conn, client_id=None):
    path = "/login" + ("?client_id=" + urllib.parse.quote(client_id) if client_id else "")
    return conn.call(path)


# ---- faultd (proxy mode): its request counts by operation ----

def faultd(base, path, body=None):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    if body is None:
        c.request("GET", path)
    else:
        c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read().decode()
    c.close()
    if r.status != 200:
        raise RuntimeError("faultd %s: HTTP %d %s" % (path, r.status, data[:200]))
    return data


def ops(base):
    out = {}
    for line in faultd(base, "/_stats").splitlines():
        k, _, v = line.partition(" ")
        if k.startswith("op."):
            out[k[3:]] = int(v)
    return out


def fmt(o):
    return ", ".join("%s %d" % kv for kv in sorted(o.items())) or "none"


def concurrent(mode, base, test, fbase, n, cold_a, cold_b):
    n = int(n)
    tc = Conn(test)
    warm = Conn(base)
    for _ in range(2):
        status, _, raw = login_page(warm)
        if status != 200:
            check("GET /login for the example's client", False, "HTTP %d %r" % (status, raw[:200]))
            return
    faultd(fbase, "/_control", {"reset_stats": True, "faults": []})
    status, doc, raw = login_page(warm, cold_a)
    one = ops(fbase)
    check("GET /login?client_id=%s (a client nginx never read) answers that client" % cold_a,
          status == 200 and doc["client"]["client_id"] == cold_a, "HTTP %d %r" % (status, raw[:200]))
    info("one GET /login for a cold client, cache %s: DynamoDB requests %s" % (mode, fmt(one)))

    conns = [Conn(base) for _ in range(n)]
    for c in conns:
        c.c.connect()
    before = stats(tc)
    faultd(fbase, "/_control", {"reset_stats": True, "faults": ["slow:300"]})
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = login_page(conns[i], cold_b)
        except Exception as e:  # noqa: BLE001 - reported as a failed check below
            results[i] = (0, None, repr(e).encode())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = (time.time() - t0) * 1000
    together = ops(fbase)
    after = stats(tc)
    for c in conns:
        c.close()
    bad = [r for r in results if r[0] != 200 or r[1]["client"]["client_id"] != cold_b]
    check("%d concurrent GET /login?client_id=%s all answer that client (%.0f ms)" % (n, cold_b, ms),
          not bad, bad and "HTTP %s %r" % (bad[0][0], bad[0][2][:200]))
    workers = set(c.worker for c in conns)
    check("they were served by one worker (%s)" % ",".join(sorted(map(str, workers))), len(workers) == 1)
    sent = after["requests"] - before["requests"]
    info("%d concurrent GET /login for a cold client, cache %s: DynamoDB requests %s (the client's own count: %d)"
         % (n, mode, fmt(together), sent))
    check("faultd counted the requests the client says it sent (%d)" % sent, sent == sum(together.values()),
          "faultd %s" % fmt(together))
    if mode == "on":
        check("%d concurrent misses of the same cold keys cost one request's DynamoDB reads (%s), not %d times"
              % (n, fmt(one), n), together == one and sum(one.values()) > 0,
              "one request: %s; %d together: %s" % (fmt(one), n, fmt(together)))
        waits = after["cache"]["waits"] - before["cache"]["waits"]
        loads = after["cache"]["loads"] - before["cache"]["loads"]
        info("cache loads +%d, waits +%d" % (loads, waits))
        check("the misses overlapped: %d of them waited for the first one's read (cache waits +%d, loads +%d)"
              % (n - 1, waits, loads), waits >= n - 1, "fewer waits than requests - 1")
    else:
        want = {k: v * n for k, v in one.items()}
        check("without the cache, %d concurrent requests cost %d times one request's (%s)" % (n, n, fmt(want)),
              together == want and sum(one.values()) > 0, "got %s" % fmt(together))


def mutation(base, test):
    c = Conn(base)
    tc = Conn(test)
    login_page(c)
    status, first, raw = login_page(c)
    if status != 200:
        check("GET /login", False, "HTTP %d %r" % (status, raw[:200]))
        return
    worker = c.worker
    status, doc, raw = tc.call("/_t/cache/mutate", "POST", "")
    check("a handler read the tenant, client, its connections, branding and prompt settings and changed them "
          "(all cache hits: %s DynamoDB requests)" % (doc or {}).get("requests"),
          status == 200 and doc["requests"] == 0 and str(doc["worker"]) == worker,
          "HTTP %d %r (login page from worker %s)" % (status, raw[:200], worker))
    before = stats(tc)["requests"]
    status, second, raw = login_page(c)
    hits = stats(tc)["requests"] - before
    check("the next GET /login, from the cache (%d DynamoDB requests), shows none of those changes" % hits,
          status == 200 and second == first and hits == 0 and c.worker == worker,
          "before %s after %s" % (json.dumps(first), raw[:300]))


def by_worker(base, path, want=2, tries=400):
    """Kept-alive connections, one per worker: new connections until each worker answered one."""
    found, spare = {}, []
    for i in range(tries):
        c = Conn(base)
        c.call(path)
        if c.worker not in found:
            found[c.worker] = c
        else:
            spare.append(c)
        if len(found) == want:
            break
    for c in spare:
        c.close()
    info("%s: %d new connection(s) to reach workers %s" % (path, i + 1, ",".join(sorted(found))))
    return found


def name_in(conn):
    status, doc, raw = login_page(conn)
    if status != 200:
        raise RuntimeError("GET /login: HTTP %d %r" % (status, raw[:200]))
    return doc["tenant"]["friendly_name"]


def workers(mode, base, test, ttl):
    ttl = float(ttl)
    ex = by_worker(base, "/health")
    tc = by_worker(test, "/_t/cache/stats")
    check("two nginx workers each answer on a kept-alive connection (example: %s, test server: %s)"
          % (",".join(sorted(ex)), ",".join(sorted(tc))), len(ex) == 2 and sorted(ex) == sorted(tc))
    if len(ex) != 2 or sorted(ex) != sorted(tc):
        return
    a, b = sorted(ex)
    for w in (a, b):
        name_in(ex[w])
    warm = {}
    for w in (a, b):
        before = stats(tc[w])["requests"]
        old = name_in(ex[w])
        warm[w] = stats(tc[w])["requests"] - before
    check("both workers hold the tenant: a second GET /login makes no DynamoDB request (worker %s: %d, %s: %d)"
          % (a, warm[a], b, warm[b]), warm[a] == 0 and warm[b] == 0)
    new = "renamed at %.6f" % time.time()
    status, doc, raw = tc[a].call("/_t/cache/rename?name=" + urllib.parse.quote(new), "POST", "")
    t_write = time.time()
    check("the tenant is renamed through worker %s's adapters" % a,
          status == 200 and str(doc["worker"]) == a, "HTTP %d %r" % (status, raw[:200]))
    before = stats(tc[b])["requests"]
    seen_b = name_in(ex[b])
    reread = stats(tc[b])["requests"] - before
    seen_a = name_in(ex[a])
    check("the writing worker %s shows the new name at once" % a, seen_a == new, "saw %r" % seen_a)
    if mode == "shared":
        check("the next GET /login in worker %s shows the new name (lua_shared_dict generations; it re-read: %d "
              "DynamoDB requests)" % (b, reread), seen_b == new and reread >= 1,
              "saw %r, %d requests" % (seen_b, reread))
        return
    check("without shared_dict, worker %s still shows the old name from its cache (%d DynamoDB requests)"
          % (b, reread), seen_b == old and reread == 0, "saw %r, %d requests" % (seen_b, reread))
    while seen_b != new and time.time() - t_write < ttl + 3:
        time.sleep(0.05)
        seen_b = name_in(ex[b])
    stale = time.time() - t_write
    info("worker %s served the old name for %.2f s after the rename (ttl %g s)" % (b, stale, ttl))
    check("worker %s shows the new name once its entry's ttl ran out (after %.2f s, ttl %g s)" % (b, stale, ttl),
          seen_b == new and stale <= ttl + 0.5, "saw %r" % seen_b)


def main(argv):
    try:
        if len(argv) == 8 and argv[0] == "concurrent" and argv[1] in ("on", "off"):
            concurrent(*argv[1:])
        elif len(argv) == 3 and argv[0] == "mutation":
            mutation(*argv[1:])
        elif len(argv) == 5 and argv[0] == "workers" and argv[1] in ("shared", "local"):
            workers(*argv[1:])
        else:
            sys.exit(__doc__)
    except Exception as e:  # noqa: BLE001 - any failure of the driver is a failed check
        check("cache checks (%s) ran to the end" % argv[0], False, repr(e))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
