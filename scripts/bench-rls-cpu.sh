#!/usr/bin/env bash
# Server CPU per request of ShouldRateLimit against 1,000 envoyproxy/ratelimit
# YAML rules (bench-surfaces.sh section 3's rule set and request), of the
# one-descriptor user_type RLS and of the empty RPC, on one server, runs
# alternating. Server on core 0, load generator on core 1 (taskset); the
# server's CPU time from /proc/PID/stat and the load generator's from
# /usr/bin/time, each per request; `busy` is the share of core 0 the
# server used (below 1: the load generator, not the server, set the pace).
# Usage: scripts/bench-rls-cpu.sh [seconds per run, default 8] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; rounds=${2:-3}
cargo build --release --locked --workspace >/dev/null 2>&1
bin=$PWD/target/release/floodgate; gen=$PWD/target/release/floodgate-loadgen
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
rules=$work/rules; mkdir -p "$rules"
for d in $(seq 0 9); do
  {
    echo "domain: d$d"; echo "descriptors:"
    echo "  - key: remote_address"; echo "    rate_limit: {unit: second, requests_per_unit: 999000}"
    for j in $(seq 1 59); do
      echo "  - key: remote_address"; echo "    value: \"10.$d.$j.1\""; echo "    rate_limit: {unit: minute, requests_per_unit: 100}"
    done
    for j in $(seq 1 20); do
      echo "  - key: path"; echo "    value: \"/api/v$j/*\""; echo "    rate_limit: {unit: second, requests_per_unit: 999000}"
    done
    for j in $(seq 1 20); do
      echo "  - key: tenant"; echo "    value: \"t$j\""; echo "    descriptors:"
      echo "      - key: user"; echo "        rate_limit: {unit: hour, requests_per_unit: 1000}"
    done
  } >"$rules/d$d.yaml"
done
taskset -c 0 "$bin" serve --profile loadtest --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --store memory --rls-config "$rules" >"$work/server.out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.05; done
addr=$(grep -o 'grpc=[^ ]*' "$work/server.out" | cut -d= -f2)
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
run() { # label loadgen-args... -> "label|rps|server µs|loadgen µs|busy|errors"
  local label=$1; shift
  local t0 t1 line
  t0=$(ticks)
  line=$(/usr/bin/time -f 'GEN %U %S' -o "$work/gen.time" taskset -c 1 "$gen" --target "$addr" \
    --concurrency 50 --duration "$secs" --warmup 0 --heartbeat "$@" 2>/dev/null | head -1)
  t1=$(ticks)
  python3 - "$label" "$line" "$t0" "$t1" "$hz" "$secs" "$(awk '/^GEN/ {print $2 + $3}' "$work/gen.time")" <<'PY'
import re, sys
label, line, t0, t1, hz, secs, gen_s = sys.argv[1:]
f = dict(re.findall(r'(\w+)=([\d.]+)', line))
req = max(int(f['requests']), 1)
server_s = (int(t1) - int(t0)) / int(hz)
print(f"{label}|{f['rps']}|{server_s * 1e6 / req:.2f}|{float(gen_s) * 1e6 / req:.2f}|{server_s / float(secs):.2f}|{f['errors']}")
PY
}
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${secs}s per run, concurrency 50, one connection"
echo
echo "| run | req/s | server CPU µs/req | load generator CPU µs/req | server busy | errors |"
echo "|---|---|---|---|---|---|"
# Ratio rows: req/s of the RLS over the empty RPC's, and the empty RPC's
# server CPU µs/req over the RLS's (the same ratio if the server set the pace).
for i in $(seq 1 "$rounds"); do
  e=$(run "empty RPC #$i" --mode empty)
  o=$(run "RLS user_type (1 descriptor) #$i" --mode rls)
  r=$(run "RLS 1,000 rules (2 descriptors, d5) #$i" --mode rls --domain d5 \
    --descriptor 'remote_address={subject}' --descriptor 'path=/api/v7/chat')
  for row in "$e" "$o" "$r"; do echo "| ${row//|/ | } |"; done
  python3 - "$e" "$o" "$r" <<'PY'
import sys
e, o, r = [row.split('|') for row in sys.argv[1:]]
n = e[0].split('#')[1]
ratio = lambda a, b: f"{float(a) / float(b):.2f}×"
print(f"| ratio #{n} | user_type {ratio(o[1], e[1])}, 1,000 rules {ratio(r[1], e[1])} "
      f"| user_type {ratio(e[2], o[2])}, 1,000 rules {ratio(e[2], r[2])} | | | |")
PY
done
