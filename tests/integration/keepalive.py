#!/usr/bin/env python3
"""A kept-alive HTTP client across swaps (issue 15, item 6).

  keepalive.py run HOST:PORT LOG STOPFILE   requests on one kept-alive
      connection until STOPFILE exists; every 10th is GET /slow?ms=200 (so
      requests are in flight when a swap happens). One line per request in
      LOG: "<start> <end> <connection#> <status> <path> <body>".
  keepalive.py check LOG SWAPS              SWAPS has "<time> <version>" per
      finished swap (its push returned), in order. Prints "requests=N
      failed=F connections=C stale=S": stale counts answers to GET / that
      began after a swap finished and come from an older version than that
      swap's (one from a newer version is the next swap switching), and
      seen=K: how many of the swaps' versions answered at all.

A failed request (an error, a broken connection, a status other than 200)
is logged as status FAIL and the client reconnects.
"""
import http.client
import os
import sys
import time


def run(addr, log, stop):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    nconn = 0
    i = 0
    with open(log, "w", buffering=1) as out:
        while not os.path.exists(stop):
            path = "/slow?ms=200" if i % 10 == 9 else "/"
            i += 1
            if conn.sock is None:
                nconn += 1  # request() connects
            t0 = time.time()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read().decode(errors="replace").strip()
                status = str(r.status) if r.status == 200 else "FAIL"
            except (OSError, http.client.HTTPException) as e:
                status, body = "FAIL", type(e).__name__
                conn.close()
            out.write("%.6f %.6f %d %s %s %s\n" %
                      (t0, time.time(), nconn, status, path, body))
            time.sleep(0.002)


def check(log, swaps):
    marks = []
    with open(swaps) as f:
        for line in f:
            t, v = line.split(None, 1)
            marks.append((float(t), v.strip()))
    rank = dict(("pong " + v, k) for k, (_, v) in enumerate(marks))
    n = failed = stale = 0
    conns = set()
    seen = set()
    with open(log) as f:
        for line in f:
            t0, _, c, status, path, body = (line.rstrip("\n").split(" ", 5)
                                            + [""])[:6]
            n += 1
            conns.add(c)
            if status != "200":
                failed += 1
                continue
            if path != "/":
                continue
            if body in rank:
                seen.add(body)
            want = -1
            for k, (t, v) in enumerate(marks):
                if float(t0) > t:
                    want = k
            # A newer version than the last finished swap is the next
            # swap already switching: not stale.
            got = rank.get(body, -1)
            if got < want:
                stale += 1
                sys.stderr.write("stale (want %s): %s" % (marks[want][1], line))
    print("requests=%d failed=%d connections=%d stale=%d seen=%d" %
          (n, failed, len(conns), stale, len(seen)))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        run(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(*sys.argv[2:])
    else:
        sys.exit(__doc__)
