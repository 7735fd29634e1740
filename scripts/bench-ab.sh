#!/usr/bin/env bash
# Two floodgate binaries side by side: for each, the empty RPC (the
# baseline), CheckCapacity (memory) and ShouldRateLimit (user_type
# descriptor, memory), req/s and the server's CPU µs per request, in
# alternating rounds (A then B, B then A, ...), one server at a time on
# core 0, the load generator on core 1 (taskset), loopback only.
# Usage: scripts/bench-ab.sh BIN_A BIN_B [seconds per run, default 5] [rounds, default 3]
# The load generator is this checkout's (target/release/floodgate-loadgen).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1"); b=$(realpath "$2"); secs=${3:-5}; rounds=${4:-3}
cargo build --release --locked -p floodgate-loadgen >/dev/null 2>&1
gen=$PWD/target/release/floodgate-loadgen
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

measure() { # BIN LABEL -> table rows for the three calls
  local bin=$1 label=$2
  taskset -c 0 "$bin" serve --profile loadtest --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --store memory >"$work/server.out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.05; done
  local addr; addr=$(grep -o 'grpc=[^ ]*' "$work/server.out" | cut -d= -f2)
  for mode in empty check rls; do
    local t0 t1 line
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    line=$(taskset -c 1 "$gen" --target "$addr" --mode "$mode" --concurrency 64 --duration "$secs" \
      --heartbeat 2>/dev/null | head -1)
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    python3 - "$label" "$mode" "$line" "$t0" "$t1" "$hz" <<'PY'
import re, sys
label, mode, line, t0, t1, hz = sys.argv[1:]
f = dict(re.findall(r'(\w+)=([\d.]+)', line))
req = max(int(f['requests']), 1)
cpu_us = (int(t1) - int(t0)) / int(hz) * 1e6 / req
print(f"| {label} | {mode} | {f['rps']} | {cpu_us:.2f} | {f['errors']} |")
PY
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${secs}s per run, concurrency 64, one connection"
echo "# A = $a"
echo "# B = $b"
echo
echo "| binary | call | req/s | server CPU µs/req | errors |"
echo "|---|---|---|---|---|"
for i in $(seq 1 "$rounds"); do
  if (( i % 2 )); then measure "$a" "A #$i"; measure "$b" "B #$i"; else measure "$b" "B #$i"; measure "$a" "A #$i"; fi
done | tee "$work/rows"
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.strip('|\n').split('|') for l in open(sys.argv[1])]
by = {}
for label, mode, rps, cpu, _ in rows:
    by.setdefault((label.split('#')[0].strip(), mode.strip()), []).append((float(rps), float(cpu)))
print()
print("| call | A: ratio to empty RPC (req/s), median | B: same | A: CPU µs/req, median | B: same |")
print("|---|---|---|---|---|")
for mode in ("check", "rls"):
    cells = []
    for side in ("A", "B"):
        r = [m[0] / e[0] for m, e in zip(by[(side, mode)], by[(side, "empty")])]
        cells.append(f"{statistics.median(r):.2f}×")
    cpu = [f"{statistics.median(c for _, c in by[(side, mode)]):.2f}" for side in ("A", "B")]
    print(f"| {mode} | {cells[0]} | {cells[1]} | {cpu[0]} | {cpu[1]} |")
empty = [f"{statistics.median(c for _, c in by[(side, 'empty')]):.2f}" for side in ("A", "B")]
print(f"| empty | 1.00× | 1.00× | {empty[0]} | {empty[1]} |")
PY
