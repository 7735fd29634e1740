#!/usr/bin/env bash
# The Redis worker cycle (EnqueueAtomic → LeaseTasks → CompleteTask) and its
# tail, A/B: each floodgate binary given (default: this tree's release
# build) gets its own server on core 0, sharing one private redis-server on
# core 1 with the load generator (as scripts/bench.sh runs them). Rounds
# alternate: the empty RPC (baseline) then the cycle, binary after binary.
# Per run: cycles/s, p50/p99 of a whole cycle (client side), the server's
# CPU µs per cycle (/proc/PID/stat), and per RPC the share of calls the
# server took longer than 10 ms and 25 ms (its duration histogram).
# Usage: scripts/bench-cycle.sh [seconds per run, default 10] [rounds, default 3] [floodgate binary…]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release --locked --workspace >/dev/null 2>&1
  bins=(target/release/floodgate)
fi
gen=target/release/floodgate-loadgen
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

rport=$(free_port)
taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

addrs=() https=() pids=()
for i in "${!bins[@]}"; do
  out="$work/server$i.out"
  # Separate deployments on one Redis: their queues must not mix.
  printf 'redis_prefix = "{bench%s}"\n' "$i" >"$work/server$i.toml"
  taskset -c 0 "${bins[$i]}" serve --profile loadtest --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --store "redis://127.0.0.1:$rport/0" --config "$work/server$i.toml" >"$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$out" 2>/dev/null && break; sleep 0.05; done
  addrs+=("$(grep -o 'grpc=[^ ]*' "$out" | cut -d= -f2)")
  https+=("$(grep -o 'http=[^ ]*' "$out" | cut -d= -f2)")
done

# Per-method bucket counts of the server's RPC histogram: "method le count".
buckets() {
  curl -s "http://$1/metrics" | grep '^floodgate_rpc_duration_seconds_bucket' |
    sed -nE 's/.*method="([A-Za-z]+)".*grpc_code="OK".*le="([^"]+)"\} ([0-9]+).*/\1 \2 \3/p'
}

# slow BEFORE AFTER: per method, % of calls over 10 ms and over 25 ms.
slow() {
  python3 - "$1" "$2" <<'EOF'
import sys
def read(p):
    d = {}
    for line in open(p):
        m, le, n = line.split()
        d[(m, le)] = int(n)
    return d
a, b = read(sys.argv[1]), read(sys.argv[2])
out = []
for m in ("EnqueueAtomic", "LeaseTasks", "CompleteTask"):
    get = lambda le: b.get((m, le), 0) - a.get((m, le), 0)
    total = get("+Inf")
    if total:
        out.append(f"{m} >10ms {100 * (total - get('0.01')) / total:.2f}% >25ms {100 * (total - get('0.025')) / total:.2f}%")
print("; ".join(out))
EOF
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${secs}s per run, concurrency 64, server core 0, redis + loadgen core 1"
for i in "${!bins[@]}"; do echo "# binary $i: ${bins[$i]}"; done
echo
echo "| run | binary | cycles/s | p50 µs | p99 µs | p99/p50 | server CPU µs/req | server-side slow calls |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  for i in "${!bins[@]}"; do
    for mode in empty cycle; do
      buckets "${https[$i]}" >"$work/before"
      t0=$(cpu_ticks "${pids[$i]}")
      line=$(taskset -c 1 "$gen" --target "${addrs[$i]}" --mode "$mode" --concurrency 64 --duration "$secs" --warmup 0 --heartbeat 2>/dev/null | head -1)
      t1=$(cpu_ticks "${pids[$i]}")
      buckets "${https[$i]}" >"$work/after"
      rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$line")
      p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
      p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
      req=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
      cpu=$(python3 -c "print(round(($t1-$t0)/$hz*1e6/max($req,1),1))")
      ratio=$(python3 -c "print(f'{$p99/max($p50,1):.1f}×')")
      extra=""
      [ "$mode" = cycle ] && extra=$(slow "$work/before" "$work/after")
      echo "| $mode #$r | $i | $rps | $p50 | $p99 | $ratio | $cpu | $extra |"
    done
  done
done
