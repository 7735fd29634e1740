#!/usr/bin/env bash
# Reproducible benchmarks for BENCHMARKS.md. Server on core 0, load
# generator (and redis-benchmark) on core 1 (taskset), loopback only.
# Usage: scripts/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --locked --workspace >/dev/null 2>&1
bin=target/release/floodgate
gen=target/release/floodgate-loadgen
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server NAME STORE CONFIG_TOML -> sets $addr and $pid
start_server() {
  printf '%s\n' "$3" >"$work/$1.toml"
  taskset -c 0 "$bin" serve --profile loadtest --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --store "$2" --config "$work/$1.toml" >"$work/$1.out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$work/$1.out" 2>/dev/null && break; sleep 0.05; done
  addr=$(grep -o 'grpc=[^ ]*' "$work/$1.out" | cut -d= -f2)
}

once() { # mode [extra loadgen args] -> one loadgen summary line
  local mode=$1; shift
  taskset -c 1 "$gen" --target "$addr" --mode "$mode" --concurrency 64 --duration "$secs" --heartbeat "$@" 2>/dev/null | head -1
}

row() { # label summary-line
  echo "| $1 | $(sed -E 's/.*rps=([0-9]+).*p50_us=([0-9]+).*p99_us=([0-9]+).*admitted=([0-9]+) rate_limited=([0-9]+) backpressure=([0-9]+) circuit_open=([0-9]+) errors=([0-9]+).*/\1 | \2 | \3 | \4 | \5+\6+\7 | \8/' <<<"$2") |"
}

run() { # label mode [extra loadgen args]
  local label=$1; shift
  row "$label" "$(once "$@")"
}

rps() { sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$1"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# rls_pair TITLE: empty RPC vs ShouldRateLimit at concurrency 50, alternating
# ×2, with the server's CPU µs per request (from /proc/PID/stat).
rls_pair() {
  header "$1"
  local hz; hz=$(getconf CLK_TCK)
  for i in 1 2; do
    for mode in empty rls; do
      local t0 t1 line req
      t0=$(cpu_ticks "$pid")
      line=$(taskset -c 1 "$gen" --target "$addr" --mode "$mode" --concurrency 50 --duration "$secs" --warmup 0 --heartbeat 2>/dev/null | head -1)
      t1=$(cpu_ticks "$pid")
      req=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
      row "$mode #$i (server CPU $(python3 -c "print(round(($t1-$t0)/$hz*1e6/max($req,1),1))") µs/req)" "$line"
    done
  done
}

header() { echo; echo "$1"; echo; echo "| run | req/s | p50 µs | p99 µs | admitted | refused (429+503+circuit) | errors |"; echo "|---|---|---|---|---|---|---|"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${secs}s per run, concurrency 64, one connection"

header "## Embedded store (alternating runs: baseline, CheckCapacity, ×3)"
start_server mem memory ""
for i in 1 2 3; do
  e=$(once empty); row "empty RPC (health Check, baseline) #$i" "$e"
  c=$(once check); row "CheckCapacity #$i" "$c"
  echo "| ratio #$i | $(python3 -c "print(f'{$(rps "$c")/$(rps "$e"):.2f}×')") | | | | | |"
done
run "EnqueueAtomic → LeaseTasks → CompleteTask (cycles)" cycle
kill $pid; wait $pid 2>/dev/null || true

header "## Embedded store: CheckCapacity with analytics and breakers on vs off (two servers, alternating ×3)"
start_server memon memory ""
on_addr=$addr; on_pid=$pid
start_server memoff memory $'[runtime]\nanalytics_enabled = false\n[runtime.breakers]\nenabled = false'
off_addr=$addr; off_pid=$pid
for i in 1 2 3; do
  addr=$on_addr; a=$(once check); row "protection ON #$i" "$a"
  addr=$off_addr; b=$(once check); row "protection OFF #$i" "$b"
  echo "| ON/OFF #$i | $(python3 -c "print(f'{$(rps "$a")/$(rps "$b"):.2f}×')") | | | | | |"
done
kill $on_pid $off_pid; wait $on_pid $off_pid 2>/dev/null || true

start_server rlsmem memory ""
rls_pair "## Envoy RLS ShouldRateLimit (user_type descriptor), embedded store, concurrency 50"
kill $pid; wait $pid 2>/dev/null || true

echo; echo "## Memory: 1,000,000 distinct rate-limited subjects"
# One request a minute per subject: every key stays live for the whole run.
start_server rss memory $'[runtime.rate_limits.registered]\nper_minute = 1\nburst = 100'
before=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
taskset -c 1 "$gen" --target "$addr" --mode check --concurrency 64 --subjects 0 --requests 1000000 --warmup 0 --heartbeat >/dev/null 2>&1
after=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
echo; echo "RSS before: $((before / 1024)) MiB; after 1,000,000 distinct live subjects: $((after / 1024)) MiB"
kill $pid; wait $pid 2>/dev/null || true

rport=$(free_port)
taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
rpid=$!
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
header "## Redis store (private redis-server on core 1 with the load generator)"
start_server red "redis://127.0.0.1:$rport/0" ""
for i in 1 2; do
  e=$(once empty); row "empty RPC (health Check, baseline) #$i" "$e"
  redis-cli -p "$rport" config resetstat >/dev/null
  c=$(once check); row "CheckCapacity #$i" "$c"
  check_stats=$(redis-cli -p "$rport" info commandstats | grep -E '^cmdstat_(evalsha|eval):' | tr -d '\r' || true)
  echo "| ratio #$i | $(python3 -c "print(f'{$(rps "$c")/$(rps "$e"):.2f}×')") | | | | | |"
done
run "EnqueueAtomic → LeaseTasks → CompleteTask (cycles)" cycle
kill $pid; wait $pid 2>/dev/null || true
redis-cli -p "$rport" flushall >/dev/null
# Room for every admission of the run: the queue grows for its duration.
start_server redbig "redis://127.0.0.1:$rport/0" $'[runtime]\nconcurrent_per_process = 100000\nqueue_multiplier = 1000'
redis-cli -p "$rport" config resetstat >/dev/null
enq=$(once enqueue); row "EnqueueAtomic (all admitted)" "$enq"
enqueue_stats=$(redis-cli -p "$rport" info commandstats | grep -E '^cmdstat_(evalsha|eval):' | tr -d '\r' || true)
kill $pid; wait $pid 2>/dev/null || true
redis-cli -p "$rport" flushall >/dev/null

header "## Redis store: CheckCapacity with analytics and breakers on vs off (alternating ×2)"
start_server redon "redis://127.0.0.1:$rport/0" ""
on_addr=$addr; on_pid=$pid
start_server redoff "redis://127.0.0.1:$rport/0" $'[runtime]\nanalytics_enabled = false\n[runtime.breakers]\nenabled = false'
off_addr=$addr; off_pid=$pid
for i in 1 2; do
  addr=$on_addr; a=$(once check); row "protection ON #$i" "$a"
  addr=$off_addr; b=$(once check); row "protection OFF #$i" "$b"
  echo "| ON/OFF #$i | $(python3 -c "print(f'{$(rps "$a")/$(rps "$b"):.2f}×')") | | | | | |"
done
kill $on_pid $off_pid; wait $on_pid $off_pid 2>/dev/null || true
redis-cli -p "$rport" flushall >/dev/null
start_server rlsred "redis://127.0.0.1:$rport/0" ""
rls_pair "## Envoy RLS ShouldRateLimit (user_type descriptor), Redis store, concurrency 50"
kill $pid; wait $pid 2>/dev/null || true

echo; echo "commandstats during the last CheckCapacity run (warm-up included): $check_stats"
echo; echo "commandstats during the EnqueueAtomic run (warm-up included): $enqueue_stats"
sha=$(redis-cli -p "$rport" script load "return redis.call('INCR', KEYS[1])")
echo; echo "redis-benchmark EVALSHA ceiling (same Redis, 64 clients, core 1):"
taskset -c 1 redis-benchmark -p "$rport" -c 64 -n 600000 -q evalsha "$sha" 1 '{floodgate}:bench' 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1
kill $rpid
