#!/usr/bin/env bash
# Redis-side cost per rate-limit decision on one node and on a 3-primary
# Cluster (issue 15): the real scripts (prelude + gcra.lua, rls.lua) run by
# redis-benchmark with a fresh subject per call (__rand_int__), Redis on
# core 1, the load generator on core 0. Reports INFO commandstats
# usec_per_call (server CPU per script call, little affected by other load
# on the machine) and calls/s (which is). Part 2 puts a real floodgate in front.
# Usage: scripts/bench-cluster.sh [N script calls per row] [seconds per floodgate run]
set -euo pipefail
n=${1:-300000}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() { # port extra-args...
  local port=$1; shift
  mkdir -p "$dir/$port"
  taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/$port" "$@" >/dev/null 2>&1 &
  pids+=($!)
  until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
}
here=$(cd "$(dirname "$0")/.." && pwd)
gcra=$(cat "$here/src/store/lua/prelude.lua" "$here/src/store/lua/gcra.lua")
rls=$(cat "$here/src/store/lua/prelude.lua" "$here/src/store/lua/rls.lua")
usec() { # port command → calls usec_per_call
  redis-cli -p "$1" info commandstats | tr -d '\r' | { grep "^cmdstat_$2:" || true; } |
    sed -E 's/.*calls=([0-9]+),usec=[0-9]+,usec_per_call=([0-9.]+).*/\1 \2/'
}
bench() { # label ports cluster-flag args...
  local label=$1 ports=$2 flag=$3; shift 3
  for p in $ports; do redis-cli -p "$p" config resetstat >/dev/null; done
  local out
  out=$(taskset -c 0 redis-benchmark -p "${ports%% *}" $flag -c 64 -n "$n" -r 1000000 -q "$@" 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1)
  local per=""
  for p in $ports; do per="$per $(usec "$p" evalsha | awk '{printf "%s calls %s µs/call;", $1, $2}')"; done
  echo "| $label | $(echo "$out" | grep -oE '[0-9.]+ requests per second') |$per |"
}
one=$(free_port); start "$one"
c1=$(free_port); c2=$(free_port); c3=$(free_port)
for p in $c1 $c2 $c3; do start "$p" --cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" --cluster-port "$(free_port)"; done
redis-cli --cluster create 127.0.0.1:$c1 127.0.0.1:$c2 127.0.0.1:$c3 --cluster-replicas 0 --cluster-yes >/dev/null
for p in $c1 $c2 $c3; do until redis-cli -p "$p" cluster info | grep -q cluster_state:ok; do sleep 0.1; done; done
for p in $one $c1 $c2 $c3; do
  g=$(redis-cli -p "$p" script load "$gcra"); r=$(redis-cli -p "$p" script load "$rls")
done
# GCRA: 60/min, burst 5 (interval 1 s, tolerance 5 s), cost 1, Redis TIME.
# On the Cluster redis-benchmark replaces {tag} with a tag of each primary's
# slots and sends each call to its primary: keys differ from floodgate's
# (which hash by subject), the scripts and their cost do not.
g1=(1000000 5000000 1 '')
gone=(evalsha "$g" 1 'floodgate:v2:rate:registered:{s__rand_int__}' "${g1[@]}")
gcl=(evalsha "$g" 1 'floodgate:v2:rate:registered:{tag}:s__rand_int__' "${g1[@]}")
# RLS: one descriptor, enforcing, not a dry run.
r1=('' 0 1 1000000 5000000 1 1)
rone=(evalsha "$r" 1 'floodgate:v2:rls:{4:chat14:remote_address__rand_int__}' "${r1[@]}")
rcl=(evalsha "$r" 1 'floodgate:v2:rls:{tag}:4:chat14:remote_address__rand_int__' "${r1[@]}")
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $n calls per row, 64 clients"
echo "| script | calls/s | per node: calls, usec_per_call |"
echo "|---|---|---|"
for i in 1 2; do
  bench "GCRA, one node #$i" "$one" "" "${gone[@]}"
  bench "GCRA, 3-primary Cluster #$i" "$c1 $c2 $c3" "--cluster" "${gcl[@]}"
  bench "RLS 1 descriptor, one node #$i" "$one" "" "${rone[@]}"
  bench "RLS 1 descriptor, 3-primary Cluster #$i" "$c1 $c2 $c3" "--cluster" "${rcl[@]}"
done

# ---- Part 2: through floodgate (issue 15) -----------------------------------
# The same nodes behind a real floodgate (core 0; Redis and the load generator
# on core 1): CheckCapacity and ShouldRateLimit on one node vs the 3-primary
# Cluster, with floodgate's CPU µs per request (/proc/PID/stat) and Redis's
# script calls and usec_per_call per decision (INFO commandstats, summed over
# the nodes). Then one abusive subject flooding at full rate beside normal
# traffic, with the local shield on (the Redis default) and off.
secs=${2:-10}
cd "$here"
cargo build --release --locked --workspace >/dev/null 2>&1
bin=$here/target/release/floodgate
gen=$here/target/release/floodgate-loadgen
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
serve() { # name store-url config-toml -> $addr $fpid
  printf '%s\n' "$3" >"$dir/$1.toml"
  taskset -c 0 "$bin" serve --profile loadtest --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --store "$2" --config "$dir/$1.toml" >"$dir/$1.out" 2>/dev/null &
  fpid=$!; pids+=($fpid)
  for _ in $(seq 200); do grep -q listening "$dir/$1.out" 2>/dev/null && break; sleep 0.05; done
  addr=$(grep -o 'grpc=[^ ]*' "$dir/$1.out" | cut -d= -f2)
}
load() { # mode [loadgen args] -> one summary line
  local mode=$1; shift
  taskset -c 1 "$gen" --target "$addr" --mode "$mode" --duration "$secs" --heartbeat "$@" 2>/dev/null | head -1
}
script_calls() { # ports -> total evalsha calls and usec
  local calls=0 usec=0 c u
  for p in $1; do
    read -r c u < <(redis-cli -p "$p" info commandstats | tr -d '\r' | { grep '^cmdstat_evalsha:' || echo 'calls=0,usec=0'; } |
      sed -E 's/.*calls=([0-9]+),usec=([0-9]+).*/\1 \2/')
    calls=$((calls + c)); usec=$((usec + u))
  done
  echo "$calls $usec"
}
measured() { # label ports mode [loadgen args] -> one table row
  local label=$1 ports=$2; shift 2
  for p in $ports; do redis-cli -p "$p" config resetstat >/dev/null; done
  local t0 t1 line req calls usec
  # No warm-up: the counters cover exactly the requests counted.
  t0=$(cpu_ticks "$fpid"); line=$(load "$@" --warmup 0); t1=$(cpu_ticks "$fpid")
  read -r calls usec < <(script_calls "$ports")
  req=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
  python3 - "$label" "$line" "$req" "$t0" "$t1" "$hz" "$calls" "$usec" <<'PY'
import re, sys
label, line, req, t0, t1, hz, calls, usec = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
f = dict(re.findall(r"(\w+)=([\d.]+)", line))
req = max(req, 1)
print(f"| {label} | {f.get('rps')} | {f.get('p50_us')} | {f.get('p99_us')} | {(t1 - t0) / hz * 1e6 / req:.1f} "
      f"| {calls / req:.2f} | {usec / req:.2f} | {f.get('errors')} |")
PY
}
for p in $one $c1 $c2 $c3; do redis-cli -p "$p" flushall >/dev/null; done
echo
echo "floodgate on core 0, Redis and the load generator on core 1; ${secs}s per run, concurrency 64, one connection"
echo
echo "| run | req/s | p50 µs | p99 µs | floodgate CPU µs/req | script calls/req | Redis usec/req | errors |"
echo "|---|---|---|---|---|---|---|---|"
serve one "redis://127.0.0.1:$one/0" ""; one_addr=$addr; one_pid=$fpid
serve cluster "redis-cluster://127.0.0.1:$c1,127.0.0.1:$c2,127.0.0.1:$c3/" ""; cl_addr=$addr; cl_pid=$fpid
for i in 1 2; do
  addr=$one_addr fpid=$one_pid; measured "empty RPC, one node #$i" "$one" empty
  addr=$one_addr fpid=$one_pid; measured "CheckCapacity, one node #$i" "$one" check
  addr=$cl_addr fpid=$cl_pid; measured "CheckCapacity, 3-primary Cluster #$i" "$c1 $c2 $c3" check
  addr=$one_addr fpid=$one_pid; measured "ShouldRateLimit, one node #$i" "$one" rls --concurrency 50
  addr=$cl_addr fpid=$cl_pid; measured "ShouldRateLimit, 3-primary Cluster #$i" "$c1 $c2 $c3" rls --concurrency 50
done
kill "$one_pid" "$cl_pid"; wait "$one_pid" "$cl_pid" 2>/dev/null || true

# The flood: one anonymous subject (limit 60/min, burst 5) at concurrency 32,
# beside registered traffic over 10,000 subjects at concurrency 32. Two load
# generators share core 1; the registered one's req/s is the other subjects'
# throughput.
limits=$'[runtime.rate_limits.anonymous]\nper_minute = 60\nburst = 5'
echo
echo "| shield | abusive subject req/s (admitted of all) | other subjects req/s | floodgate CPU µs/req (all) | script calls/s | Redis CPU ms/s | shield hits |"
echo "|---|---|---|---|---|---|---|"
for i in 1 2; do
  for shield in on off; do
    redis-cli -p "$one" flushall >/dev/null; redis-cli -p "$one" config resetstat >/dev/null
    top=""; [ "$shield" = off ] && top=$'local_shield_capacity = 0\n'
    serve "flood-$shield" "redis://127.0.0.1:$one/0" "$top$limits"
    http=$(grep -o 'http=[^ ]*' "$dir/flood-$shield.out" | cut -d= -f2)
    t0=$(cpu_ticks "$fpid")
    load check --user-type anonymous --subjects 1 --concurrency 32 --warmup 0 >"$dir/abuse" & abuser=$!
    load check --user-type registered --subjects 10000 --concurrency 32 --warmup 0 >"$dir/normal"
    wait $abuser
    t1=$(cpu_ticks "$fpid")
    read -r calls usec < <(script_calls "$one")
    hits=$(curl -s "http://$http/metrics" | awk '/^floodgate_local_shield_hits_total/ {s += $2} END {print s + 0}')
    req=$(( $(sed -E 's/.*requests=([0-9]+).*/\1/' "$dir/abuse") + $(sed -E 's/.*requests=([0-9]+).*/\1/' "$dir/normal") ))
    cpu=$(python3 -c "print(round(($t1 - $t0) / $hz * 1e6 / max($req, 1), 1))")
    echo "| $shield #$i | $(sed -E 's/.*requests=([0-9]+) rps=([0-9]+).*admitted=([0-9]+).*/\2 (\3 of \1)/' "$dir/abuse") | $(sed -E 's/.*rps=([0-9]+).*/\1/' "$dir/normal") | $cpu | $((calls / secs)) | $((usec / secs / 1000)) | $hits |"
    kill "$fpid"; wait "$fpid" 2>/dev/null || true
  done
done
