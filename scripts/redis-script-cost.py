#!/usr/bin/env python3
"""Instructions Redis spends per enqueue.lua call, counted by valgrind's
callgrind (repeatable whatever else the machine runs; a wall-clock
benchmark of the same script is not on a shared two-core host).

A private redis-server runs under callgrind on a free port; the script
(prelude.lua + the Level-2 script) is called CALLS times with BATCH
check-and-enqueues each, all admitted, no idempotency keys, payload
"chat task" (the load generator's). A second run with no calls gives the
start-up cost to subtract. Needs redis-server and valgrind; no Python
packages (RESP is spoken directly).

Usage: scripts/redis-script-cost.py [--script PATH] [--batch N ...] [--calls M]
"""
import argparse
import os
import re
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Resp:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()

    def read(self):
        line = self.file.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def instructions(script, batch, calls):
    """Total instructions of one redis-server run that serves `calls` calls."""
    port, work = free_port(), tempfile.mkdtemp()
    out = os.path.join(work, "callgrind.out")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "redis-server",
         "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                redis = Resp(port)
                redis.call("PING")
                break
            except OSError:
                time.sleep(0.1)
        sha = redis.call("SCRIPT", "LOAD", script)
        keys = [f"{{f}}:{k}" for k in ("q0", "q1", "q2", "expiry", "meta", "payload", "sequence")]
        n = 0
        for _ in range(calls):
            args = [""]
            for _ in range(batch):
                n += 1
                args += [n % 3, 10**9, f"task-{n:012d}", "chat task", ""]
            redis.call("EVALSHA", sha, len(keys) + batch, *keys, *([keys[6]] * batch), *args)
    finally:
        server.terminate()
        server.wait()
    return int(re.search(r"^(?:summary|totals): (\d+)", open(out).read(), re.M).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", default=os.path.join(ROOT, "src/store/lua/enqueue.lua"))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 7, 20])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    prelude = open(os.path.join(ROOT, "src/store/lua/prelude.lua")).read()
    script = prelude + "\n" + open(args.script).read()
    idle = instructions(script, 1, 0)
    print(f"{os.path.relpath(args.script, ROOT)}, {args.calls} calls per batch size")
    print("| batch | instructions per call | per admission |")
    print("|---|---|---|")
    for batch in args.batch:
        per_call = (instructions(script, batch, args.calls) - idle) / args.calls
        print(f"| {batch} | {per_call / 1000:.1f} k | {per_call / batch / 1000:.1f} k |")


if __name__ == "__main__":
    main()
