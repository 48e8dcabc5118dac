#!/usr/bin/env bash
# make bench-rls: guardian's RLS (memory, Redis), a no-op RLS v3 server (the
# gRPC ceiling) and, when installed, envoyproxy/ratelimit on the same Redis,
# each driven by cmd/rlsload with the same load, side by side in one run.
# Install the reference with:
#   go install github.com/envoyproxy/ratelimit/src/service_cmd@v1.4.1-0.20260122083618-3fb702589d36
#
# The services run in turn, ROUNDS times over; the table gives each one's
# median round (this machine's speed drifts by ±15 % within minutes, which
# rounds spread over every service alike). Then latency at half guardian's
# Redis rate, open loop, the same offered load for every service.
set -euo pipefail
cd "$(dirname "$0")/../../.."
GO=${GO:-go}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-64}
TENANTS=${TENANTS:-1000}
HITS=${HITS:-1}
REF_BIN=${REF_BIN:-$($GO env GOPATH)/bin/service_cmd}
# Every Go process (guardian, the reference, the no-op server and the load
# generator) runs with guardian's default GOGC, so that only the services
# differ. GOMAXPROCS, if set, applies to every process too.
export GOGC=${GOGC:-400}
[ -n "${GOMAXPROCS:-}" ] && export GOMAXPROCS
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

$GO build -o "$tmp/guardian" ./cmd/guardian
$GO build -o "$tmp/rlsload" ./cmd/rlsload
# load ADDR LABEL [rlsload flags]; CPU names the processes whose CPU time
# per decision is printed with the load generator's (name=pid,...).
load() { "$tmp/rlsload" -addr "$1" -label "$2" -duration "$DURATION" -concurrency "$CONCURRENCY" -tenants "$TENANTS" -hits "$HITS" -cpu "$CPU" "${@:3}" | tee -a "$tmp/results"; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
mallocs() { curl -sf "http://127.0.0.1:18083/metrics" | awk '/^go_memstats_mallocs_total / {printf "%.0f", $2}'; }

redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" & redis_pid=$!; pids+=($redis_pid)
wait_port 16379

noop() { # noop LABEL [rlsload flags]
  "$tmp/rlsload" -noop 127.0.0.1:18089 & p=$!; pids+=($p); wait_port 18089
  CPU=server=$p load 127.0.0.1:18089 "$1" "${@:2}"; stop $p
}
guardian() { # guardian memory|redis LABEL [rlsload flags]: then 2 s more to count its allocations
  local url=""; [ "$1" = redis ] && url=redis://127.0.0.1:16379
  BENCH_RLS_ADDR=127.0.0.1:18082 BENCH_ADMIN_ADDR=127.0.0.1:18083 BENCH_REDIS_URL=$url \
    "$tmp/guardian" serve --config deploy/local/bench/guardian-bench.yaml 2>"$tmp/guardian.log" & p=$!; pids+=($p); wait_port 18082
  local cpu=server=$p; [ "$1" = redis ] && cpu+=,redis=$redis_pid
  CPU=$cpu load 127.0.0.1:18082 "$2" "${@:3}"
  if [ $# -eq 2 ] && command -v curl >/dev/null; then
    local a b; a=$(mallocs)
    local secs=2
    "$tmp/rlsload" -addr 127.0.0.1:18082 -duration "${secs}s" -warmup 0s -concurrency "$CONCURRENCY" -tenants "$TENANTS" -hits "$HITS" >"$tmp/alloc-run"
    b=$(mallocs)
    awk -v a="$a" -v b="$b" -v l="$2" -v secs="$secs" '{for(i=1;i<=NF;i++) if($(i)=="decisions/s") printf "%s allocs %.1f\n", l, (b-a)/($(i-1)*secs)}' "$tmp/alloc-run" >>"$tmp/allocs"
  fi
  stop $p
}
ref() { # ref default|pipelined LABEL [rlsload flags]: envoyproxy/ratelimit on the same Redis
  local env_stats=(USE_STATSD=false)
  [ "$1" != "default" ] && env_stats+=(DISABLE_STATS=true REDIS_PIPELINE_WINDOW=150us)
  env "${env_stats[@]}" REDIS_SOCKET_TYPE=tcp REDIS_URL=127.0.0.1:16379 \
    RUNTIME_ROOT="$PWD/deploy/local/bench" RUNTIME_SUBDIRECTORY=reference RUNTIME_WATCH_ROOT=false \
    HOST=127.0.0.1 PORT=18090 GRPC_HOST=127.0.0.1 GRPC_PORT=18091 DEBUG_HOST=127.0.0.1 DEBUG_PORT=18092 LOG_LEVEL=warn \
    "$REF_BIN" >"$tmp/ref.log" 2>&1 & p=$!; pids+=($p); wait_port 18091
  CPU=server=$p,redis=$redis_pid load 127.0.0.1:18091 "$2" "${@:3}"; stop $p
}
have_ref=false
if [ -x "$REF_BIN" ]; then have_ref=true; else
  echo "envoyproxy/ratelimit not installed at $REF_BIN: skipped (see the install line at the top of this script)"
fi

echo "load: concurrency $CONCURRENCY, 1 connection, $TENANTS tenants, hits $HITS, $DURATION per run, $ROUNDS rounds; $(nproc) cores, GOGC=$GOGC for every process, GOMAXPROCS=${GOMAXPROCS:-default}"
for r in $(seq "$ROUNDS"); do
  echo "-- round $r"
  noop "no-op RLS v3 (ceiling)"
  guardian memory "guardian memory"
  guardian redis "guardian redis"
  if $have_ref; then
    ref default "envoyproxy/ratelimit default"
    ref pipelined "envoyproxy/ratelimit stats off, pipelined"
  fi
done

# The median round of each service (its decisions/s, with that run's
# latencies), ratios from the medians.
summary() {
  awk -v allocs="$tmp/allocs" '
    /cpu µs\/decision:/ { c = $0; sub(/.*cpu µs\/decision: */, "", c); gsub(/  +/, " ", c); cpu[last, n[last]] = c; next }
    { for (i = 1; i <= NF; i++) if ($(i) == "decisions/s") { split($0, parts, "  +"); name = parts[1]; last = name; n[name]++; rate[name, n[name]] = $(i-1); line[name, n[name]] = $0; if (!(name in seen)) { seen[name] = 1; order[++names] = name } } }
    END {
      while ((getline l < allocs) > 0) { k = l; sub(/ allocs [0-9.]+$/, "", k); a = l; sub(/.* allocs /, "", a); al[k] = al[k] (al[k] == "" ? "" : ", ") a }
      print "\n| service | decisions/s (median of " n[order[1]] ") | all rounds | p50 | p99 | p999 | server allocs/decision | CPU µs/decision |"
      print "|---|---|---|---|---|---|---|---|"
      for (o = 1; o <= names; o++) {
        s = order[o]; m = n[s]
        for (i = 1; i <= m; i++) idx[i] = i
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (rate[s, idx[j]] < rate[s, idx[i]]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
        mid = idx[int((m + 1) / 2)]; med[s] = rate[s, mid]; all = ""
        for (i = 1; i <= m; i++) all = all (i > 1 ? " / " : "") rate[s, i]
        split(line[s, mid], f, " +"); p50 = p99 = p999 = ""
        for (i = 1; i in f; i++) { if (f[i] == "p50") p50 = f[i+1]; if (f[i] == "p99") p99 = f[i+1]; if (f[i] == "p999") p999 = f[i+1] }
        printf "| %s | %d | %s | %s | %s | %s | %s | %s |\n", s, med[s], all, p50, p99, p999, (s in al ? al[s] : ""), cpu[s, mid]
      }
      noop = med["no-op RLS v3 (ceiling)"]; ref = 0
      for (s in med) if (s ~ /^envoyproxy/ && med[s] > ref) ref = med[s]
      for (s in med) if (s ~ /^guardian/) {
        l = sprintf("%s: %.0f%% of the no-op ceiling", s, 100 * med[s] / noop)
        if (ref > 0) l = l sprintf(", %.2fx envoyproxy/ratelimit best (%d/s)", med[s] / ref, ref)
        print l
      }
    }' "$1"
}
table=$(summary "$tmp/results")
echo "$table"

half=$(echo "$table" | awk -F'|' '$2 ~ /^ guardian redis $/ {print int($3 / 2)}')
echo
echo "-- half load: $half decisions/s offered (half guardian redis's median), open loop"
noop "half: no-op RLS v3 (floor)" -rate "$half"
guardian redis "half: guardian redis" -rate "$half"
if $have_ref; then
  ref default "half: envoyproxy/ratelimit default" -rate "$half"
  ref pipelined "half: envoyproxy/ratelimit stats off, pipelined" -rate "$half"
fi
