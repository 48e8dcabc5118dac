#!/usr/bin/env bash
# make bench-rls: guardian's RLS (memory, Redis), a no-op RLS v3 server (the
# gRPC ceiling) and, when installed, envoyproxy/ratelimit on the same Redis,
# each driven by cmd/rlsload with the same load, side by side in one run.
# Install the reference with:
#   go install github.com/envoyproxy/ratelimit/src/service_cmd@v1.4.1-0.20260122083618-3fb702589d36
set -euo pipefail
cd "$(dirname "$0")/../../.."
GO=${GO:-go}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-64}
TENANTS=${TENANTS:-1000}
HITS=${HITS:-1}
REF_BIN=${REF_BIN:-$($GO env GOPATH)/bin/service_cmd}
# GOMAXPROCS, if set, applies to every process (1 measured worse here).
[ -n "${GOMAXPROCS:-}" ] && export GOMAXPROCS
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

$GO build -o "$tmp/guardian" ./cmd/guardian
$GO build -o "$tmp/rlsload" ./cmd/rlsload
load() { "$tmp/rlsload" -addr "$1" -label "$2" -duration "$DURATION" -concurrency "$CONCURRENCY" -tenants "$TENANTS" -hits "$HITS" "${@:3}" | tee -a "$tmp/results"; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" & pids+=($!)
wait_port 16379

echo "load: concurrency $CONCURRENCY, 1 connection, $TENANTS tenants, hits $HITS, $DURATION each; $(nproc) cores, GOMAXPROCS=${GOMAXPROCS:-default}"
"$tmp/rlsload" -noop 127.0.0.1:18089 & p=$!; pids+=($p); wait_port 18089
load 127.0.0.1:18089 "no-op RLS v3 (ceiling)"; stop $p

BENCH_RLS_ADDR=127.0.0.1:18081 "$tmp/guardian" serve --config deploy/local/bench/guardian-bench.yaml 2>"$tmp/g1.log" & p=$!; pids+=($p); wait_port 18081
load 127.0.0.1:18081 "guardian memory"; stop $p

ref() { # ref VARIANT LABEL [rlsload flags]: envoyproxy/ratelimit on the same Redis
  local env_stats=(USE_STATSD=false)
  [ "$1" != "default" ] && env_stats+=(DISABLE_STATS=true REDIS_PIPELINE_WINDOW=150us)
  env "${env_stats[@]}" REDIS_SOCKET_TYPE=tcp REDIS_URL=127.0.0.1:16379 \
    RUNTIME_ROOT="$PWD/deploy/local/bench" RUNTIME_SUBDIRECTORY=reference RUNTIME_WATCH_ROOT=false \
    HOST=127.0.0.1 PORT=18090 GRPC_HOST=127.0.0.1 GRPC_PORT=18091 DEBUG_HOST=127.0.0.1 DEBUG_PORT=18092 LOG_LEVEL=warn \
    "$REF_BIN" >"$tmp/ref.log" 2>&1 & p=$!; pids+=($p); wait_port 18091
  load 127.0.0.1:18091 "$2" "${@:3}"; stop $p
}
guardian_redis() { # guardian_redis LABEL [rlsload flags]
  BENCH_RLS_ADDR=127.0.0.1:18082 BENCH_REDIS_URL=redis://127.0.0.1:16379 "$tmp/guardian" serve --config deploy/local/bench/guardian-bench.yaml 2>"$tmp/g2.log" & p=$!; pids+=($p); wait_port 18082
  load 127.0.0.1:18082 "$1" "${@:2}"; stop $p
}

guardian_redis "guardian redis"
if [ -x "$REF_BIN" ]; then
  ref default "envoyproxy/ratelimit default"
  ref pipelined "envoyproxy/ratelimit stats off, pipelined"
else
  echo "envoyproxy/ratelimit not installed at $REF_BIN: skipped (see the install line at the top of this script)"
fi

# Latency at half guardian's Redis maximum, open loop, the same offered load
# for every service; the no-op server's figure is the floor that gRPC and
# the load generator sharing these cores leave.
half=$(awk '/^guardian redis / {for(i=1;i<=NF;i++) if($(i)=="decisions/s") print int($(i-1)/2)}' "$tmp/results")
echo "half load: $half decisions/s offered"
"$tmp/rlsload" -noop 127.0.0.1:18089 & p=$!; pids+=($p); wait_port 18089
load 127.0.0.1:18089 "half: no-op RLS v3 (floor)" -rate "$half"; stop $p
guardian_redis "half: guardian redis" -rate "$half"
[ -x "$REF_BIN" ] && ref default "half: envoyproxy/ratelimit" -rate "$half"

awk '{for(i=1;i<=NF;i++) if($(i)=="decisions/s"){r[NR]=$(i-1); n[NR]=$0}} END{
  for(k in n) if(n[k] ~ /^no-op/) noop=r[k]; for(k in n) if(n[k] ~ /^envoyproxy/ && r[k]>ref) ref=r[k];
  for(k in n) if(n[k] ~ /^guardian (memory|redis) /){ line=sprintf("%s: %.0f%% of the no-op ceiling", substr(n[k],1,28), 100*r[k]/noop); if(ref>0) line=line sprintf(", %.2fx envoyproxy/ratelimit best", r[k]/ref); print line }
}' "$tmp/results"
