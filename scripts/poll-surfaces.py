#!/usr/bin/env python3
"""An operator's browser tab and a Prometheus, for benchmarks.

Polls exactly the JSON routes the console (console/app.js, poll()) reads,
every 2 s, and scrapes /metrics every second, over keep-alive connections
from one process (as a browser and a Prometheus do: no process per request,
so the poller's own CPU stays out of the figures). Runs until killed.

Usage: scripts/poll-surfaces.py HOST:PORT [TOKEN]
"""
import http.client
import sys
import time

CONSOLE_ROUTES = [
    "/monitoring/system",
    "/debug/capacity-calculation",
    "/monitoring/processes",
    "/monitoring/throttling/minutes",
    "/monitoring/circuit-breakers/recovery",
    "/monitoring/queues",
    "/monitoring/runtime-config",
]


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    headers = {"Authorization": "Bearer " + sys.argv[2]} if len(sys.argv) > 2 else {}
    browser = http.client.HTTPConnection(host, int(port), timeout=30)
    prometheus = http.client.HTTPConnection(host, int(port), timeout=30)

    def get(conn, path):
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                print(f"{path}: HTTP {response.status}", file=sys.stderr)
        except (OSError, http.client.HTTPException) as e:
            print(f"{path}: {e}", file=sys.stderr)
            conn.close()

    tick = 0
    start = time.monotonic()
    while True:
        get(prometheus, "/metrics")
        if tick % 2 == 0:
            for route in CONSOLE_ROUTES:
                get(browser, route)
        tick += 1
        time.sleep(max(0.0, start + tick - time.monotonic()))


if __name__ == "__main__":
    main()
