#!/usr/bin/env bash
# Benchmarks of the operator surfaces and the Envoy rule set, for
# BENCHMARKS.md: the same method as scripts/bench.sh (server on core 0, load
# generator on core 1 with taskset, loopback only, baseline in the same run,
# alternating sides).
#   1. CheckCapacity with the console polling its JSON every 2 s and /metrics
#      scraped every second, vs the same server left alone.
#   2. CheckCapacity with spans exported at a 1 % sampler vs tracing off.
#   3. ShouldRateLimit against 1,000 envoyproxy/ratelimit YAML rules in 10
#      domains (exact, wildcard and nested rules) vs the empty RPC.
#   4. The same load while the rule files are rewritten (live reloads):
#      errors must stay 0.
# Usage: scripts/bench-surfaces.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --locked --workspace >/dev/null 2>&1
cargo build --release --locked --example otlp_sink >/dev/null 2>&1
bin=$PWD/target/release/floodgate
gen=$PWD/target/release/floodgate-loadgen
sink_bin=$PWD/target/release/examples/otlp_sink
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# start_server NAME [extra args...] -> sets $addr $http $pid (env passes through)
start_server() {
  local name=$1; shift
  taskset -c 0 "$bin" serve --profile loadtest --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --store memory "$@" >"$work/$name.out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$work/$name.out" 2>/dev/null && break; sleep 0.05; done
  addr=$(grep -o 'grpc=[^ ]*' "$work/$name.out" | cut -d= -f2)
  http=$(grep -o 'http=[^ ]*' "$work/$name.out" | cut -d= -f2)
}

once() { # mode [extra loadgen args] -> one loadgen summary line
  local mode=$1; shift
  taskset -c 1 "$gen" --target "$addr" --mode "$mode" --concurrency "${conc:-64}" --duration "$secs" --heartbeat "$@" 2>/dev/null | head -1
}
row() {
  echo "| $1 | $(sed -E 's/.*rps=([0-9]+).*p50_us=([0-9]+).*p99_us=([0-9]+).*admitted=([0-9]+) rate_limited=([0-9]+) backpressure=([0-9]+) circuit_open=([0-9]+) errors=([0-9]+).*/\1 | \2 | \3 | \4 | \5+\6+\7 | \8/' <<<"$2") |"
}
rps() { sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$1"; }
ratio() { python3 -c "print(f'{$(rps "$1")/$(rps "$2"):.2f}×')"; }
header() { echo; echo "$1"; echo; echo "| run | req/s | p50 µs | p99 µs | admitted | refused (429+503+circuit) | errors |"; echo "|---|---|---|---|---|---|---|"; }

# An operator's browser tab and a Prometheus: the console's JSON every 2 s,
# /metrics every second, over keep-alive connections from one process (on
# core 1 with the load generator), for as long as the poller lives.
poll_surfaces() { exec taskset -c 1 python3 scripts/poll-surfaces.py "$http"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${secs}s per run, one connection"

header "## CheckCapacity (memory, c=64): console polling + /metrics every second vs left alone (one server, alternating ×3)"
start_server surfaces
# Each row also gives the server's CPU µs per CheckCapacity (from
# /proc/PID/stat; the polls' own cost is included in the polled rows), which
# the host's noise moves far less than req/s.
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
timed() { # label mode -> row with server CPU µs/req; sets $line
  local t0 t1 req
  t0=$(cpu_ticks "$pid"); line=$(once "$2"); t1=$(cpu_ticks "$pid")
  req=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
  row "$1 (server CPU $(python3 -c "print(round(($t1-$t0)/$hz*1e6/max($req,1),1))") µs/req)" "$line"
}
for i in 1 2 3; do
  timed "left alone #$i" check; a=$line
  poll_surfaces & poller=$!
  timed "console + scrape #$i" check; b=$line
  kill $poller; wait $poller 2>/dev/null || true
  echo "| polled / alone #$i | $(ratio "$b" "$a") | | | | | |"
done
kill $pid; wait $pid 2>/dev/null || true

header "## CheckCapacity (memory, c=64): spans exported with a 1 % sampler vs tracing off (two servers, alternating ×3)"
# The OTLP endpoint is a real one that accepts every export (examples/otlp_sink.rs,
# on core 1 with the load generator); the sampler decides before any span is built.
"$sink_bin" >"$work/sink.out" & sink_pid=$!
for _ in $(seq 100); do grep -q listening "$work/sink.out" 2>/dev/null && break; sleep 0.05; done
sink=$(awk '/listening/ {print $3}' "$work/sink.out")
taskset -cp 1 $sink_pid >/dev/null
start_server off; off_addr=$addr; off_pid=$pid
OTEL_EXPORTER_OTLP_ENDPOINT="http://$sink" OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 \
  start_server traced; on_addr=$addr; on_pid=$pid
traced_calls=0
for i in 1 2 3; do
  addr=$off_addr pid=$off_pid; timed "tracing off #$i" check; a=$line
  addr=$on_addr pid=$on_pid; timed "1 % sampled #$i" check; b=$line
  traced_calls=$((traced_calls + $(sed -E 's/.*admitted=([0-9]+) rate_limited=([0-9]+) backpressure=([0-9]+) circuit_open=([0-9]+).*/\1+\2+\3+\4/' <<<"$b")))
  echo "| sampled / off #$i | $(ratio "$b" "$a") | | | | | |"
done
kill $off_pid $on_pid; wait $off_pid $on_pid 2>/dev/null || true
kill -TERM $sink_pid; wait $sink_pid 2>/dev/null || true
echo
echo "spans exported: $(grep -o 'spans=[0-9]*' "$work/sink.out" | cut -d= -f2) of $traced_calls traced-server calls (plus heartbeats)"

# 1,000 rules: 10 domains × (1 key-only remote_address rule, 59 exact
# remote_address values, 20 wildcard paths, 20 nested tenant → user rules).
rules=$work/rules; mkdir -p "$rules"
write_rules() { # per-second limit of the key-only rule
  for d in $(seq 0 9); do
    {
      echo "domain: d$d"
      echo "descriptors:"
      echo "  - key: remote_address"
      echo "    rate_limit: {unit: second, requests_per_unit: $1}"
      for j in $(seq 1 59); do
        echo "  - key: remote_address"
        echo "    value: \"10.$d.$j.1\""
        echo "    rate_limit: {unit: minute, requests_per_unit: 100}"
      done
      for j in $(seq 1 20); do
        echo "  - key: path"
        echo "    value: \"/api/v$j/*\""
        echo "    rate_limit: {unit: second, requests_per_unit: $1}"
      done
      for j in $(seq 1 20); do
        echo "  - key: tenant"
        echo "    value: \"t$j\""
        echo "    descriptors:"
        echo "      - key: user"
        echo "        rate_limit: {unit: hour, requests_per_unit: 1000}"
      done
    } >"$rules/.d$d.tmp"
    mv "$rules/.d$d.tmp" "$rules/d$d.yaml"
  done
}
write_rules 999000
conc=50
header "## ShouldRateLimit (memory, c=50) against 1,000 YAML rules in 10 domains vs the empty RPC (alternating ×3)"
echo "(each request: remote_address={subject} (key-only rule among 59 exact values) and path=/api/v7/chat (wildcard /api/v7/*), domain d5)"
echo
start_server rules --rls-config "$rules"
for i in 1 2 3; do
  e=$(once empty); row "empty RPC #$i" "$e"
  r=$(once rls --domain d5 --descriptor 'remote_address={subject}' --descriptor 'path=/api/v7/chat'); row "ShouldRateLimit, 1,000 rules #$i" "$r"
  echo "| ratio #$i | $(ratio "$r" "$e") | | | | | |"
done

header "## The same ShouldRateLimit load while the 10 rule files are rewritten every 0.5 s (live reloads)"
( for k in $(seq 1 $((secs * 2))); do write_rules $((999000 + k)); sleep 0.5; done ) & writer=$!
r=$(once rls --domain d5 --descriptor 'remote_address={subject}' --descriptor 'path=/api/v7/chat'); row "ShouldRateLimit during reloads" "$r"
wait $writer 2>/dev/null || true
curl -s "http://$http/metrics" | grep -E '^floodgate_rls_config_load' || true
kill $pid; wait $pid 2>/dev/null || true
