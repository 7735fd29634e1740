#!/usr/bin/env bash
# Redis-side cost per rate-limit decision on one node and on a 3-primary
# Cluster (issue 15): the real scripts (prelude + gcra.lua, rls.lua) run by
# redis-benchmark with a fresh subject per call (__rand_int__), Redis on
# core 1, the load generator on core 0. Reports INFO commandstats
# usec_per_call (server CPU per script call, little affected by other load
# on the machine) and calls/s (which is). Usage: scripts/bench-cluster.sh [N]
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
