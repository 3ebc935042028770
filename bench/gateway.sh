#!/usr/bin/env bash
# bench/gateway.sh — the gateway's throughput and latency against nginx, on this machine.
#
# wrk (--latency, bench/gateway/requests.lua: X-API-Key and paths round-robin over the
# seeded keys) against three targets, all in front of the same upstream (a tiny nginx that
# answers 200 and a small JSON body to anything):
#   a  the upstream directly
#   b  nginx as an API-key-checking reverse proxy (a `map` of the keys, keepalive pool)
#   c  the Keygate gateway (target/gateway/keygate-gateway) over a local KV holding the same
#      keys as tokens and the same routes (keygate-bench gateway-seed writes it)
# After a warm-up, the targets run in interleaved rounds (order rotated each round); the
# report gives the median over rounds of requests/s, p50/p99 latency and CPU seconds per
# 100k requests of the proxy under test, and the keygate/nginx ratios against the targets
# (throughput >= 1.0x nginx, p99 <= 1.2x nginx). Any non-2xx response or socket error fails
# the run. Load stays on 127.0.0.1; every wrk run is bounded in time.
#
# Usage: bench/gateway.sh [options]
#   --duration S        seconds per measured wrk run (default 15)
#   --rounds N          interleaved rounds (default 3)
#   --connections C     wrk connections (default 64)
#   --threads T         wrk threads (default 2)
#   --warmup S          warm-up seconds per target before round 1 (default 3; 0: none)
#   --tokens N          tokens / nginx keys (default 1000)
#   --routes N          routes / nginx locations (default 100)
#   --only LIST         targets, comma separated (default a,b,c; without --only, c is skipped
#                       with a message while the keygate-gateway package does not exist)
#   --gateway-bin PATH  the gateway binary (default target/gateway/keygate-gateway, the
#                       production profile `gateway` of Cargo.toml)
#   --nginx-headers H   same (default): nginx sets the forwarding headers the gateway adds
#                       (X-Forwarded-For/Proto/Host, X-Request-Id both ways); minimal: it
#                       only strips X-API-Key (less work than the gateway does)
#   --json-out FILE     JSON result (default bench/results/gateway.json; - for none)
#   --usage             adds target d: a second keygate gateway with usage reporting on,
#                       as ./scripts/run.sh runs it (rollups every 10 s and the raw-event
#                       budget, to a real control plane: target/release/keygate-control-plane
#                       on SQLite, started here on the same 2 CPUs); c stays usage-off, so
#                       the report judges d against c beside it (throughput >= 0.95x, CPU per
#                       request <= 1.05x) and checks that every request d answered is stored
#                       (the control plane's rollup sum = d's request counter, 0 dropped)
#   --no-build          do not run cargo build; use the binaries as they are
#   --keep              keep the work directory (configs, logs, KV) and print its path
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=bench/lib.sh
source "$KG_ROOT/bench/lib.sh"

usage() { sed -n '2,39s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# Targets of the issue.
THROUGHPUT_TARGET=1.0 # keygate req/s / nginx req/s, at least
P99_TARGET=1.2        # keygate p99 / nginx p99, at most

DURATION=15
ROUNDS=3
CONNECTIONS=64
THREADS=2
WARMUP=3
TOKENS=1000
ROUTES=100
ONLY=
GATEWAY_BIN=
JSON_OUT=$KG_ROOT/bench/results/gateway.json
BUILD=1
KEEP=
USAGE=
NGINX_HEADERS=same
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
    --only) need_value "$@"; ONLY=$2; shift 2 ;;
    --gateway-bin) need_value "$@"; GATEWAY_BIN=$2; shift 2 ;;
    --json-out) need_value "$@"; JSON_OUT=$2; shift 2 ;;
    --nginx-headers) need_value "$@"; NGINX_HEADERS=$2; shift 2 ;;
    --no-build) BUILD=; shift ;;
    --usage) USAGE=1; shift ;;
    --keep) KEEP=1; shift ;;
    *) kg_die "unknown option: $1 (see --help)" ;;
    esac
done

bench_check_load_options
[[ "$NGINX_HEADERS" == same || "$NGINX_HEADERS" == minimal ]] ||
    kg_die "--nginx-headers must be 'same' or 'minimal' (got '$NGINX_HEADERS')"

cd "$KG_ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$KG_ROOT/target}

# --------------------------------------------------------------- targets

declare -A LABEL=([a]="upstream direct" [b]="nginx key-check proxy" [c]="keygate gateway"
    [d]="keygate, usage on")
TARGETS=()
SKIPPED_C=
gateway_package_exists() {
    cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"name":"keygate-gateway"'
}
if [[ -n "$ONLY" ]]; then
    IFS=, read -r -a want <<<"$ONLY"
    for t in a b c; do
        for w in "${want[@]}"; do
            [[ "$w" =~ ^[abc]$ ]] || kg_die "--only takes a comma-separated list of a, b, c (got '$w')"
            if [[ "$w" == "$t" ]]; then
                TARGETS+=("$t")
                break
            fi
        done
    done
    if [[ " ${TARGETS[*]} " == *" c "* && -z "$GATEWAY_BIN" ]] && ! gateway_package_exists; then
        kg_die "--only includes c, but the keygate-gateway package does not exist in this workspace yet (or pass --gateway-bin)"
    fi
else
    TARGETS=(a b)
    if [[ -n "$GATEWAY_BIN" ]] || gateway_package_exists; then
        TARGETS+=(c)
    else
        SKIPPED_C="the keygate-gateway package does not exist in this workspace yet"
        kg_warn "skipping target c (keygate gateway): $SKIPPED_C; running a and b only"
    fi
fi
has_target() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
[[ -z "$USAGE" ]] || TARGETS+=(d)
GATEWAY_BIN=${GATEWAY_BIN:-$TARGET_DIR/gateway/keygate-gateway}

# ------------------------------------------------------------- tools

# wrk, nginx, curl; the work directory and the cleanup that stops what is started here.
bench_init keygate-gwbench

if [[ -n "$BUILD" ]]; then
    kg_log "building keygate-bench (release)"
    nice -n 10 cargo build --release -p keygate-bench
    if has_target c && gateway_package_exists; then
        kg_log "building keygate-gateway (profile gateway: release + fat LTO, 1 codegen unit)"
        nice -n 10 cargo build --profile gateway -p keygate-gateway
    fi
    if [[ -n "$USAGE" ]]; then
        kg_log "building keygate-control-plane (release), for --usage"
        nice -n 10 cargo build --release -p keygate-control-plane
    fi
fi
[[ -x "$BENCH_BIN" ]] || kg_die "$BENCH_BIN not found: cargo build --release -p keygate-bench"
if has_target c; then
    [[ -x "$GATEWAY_BIN" ]] || kg_die "$GATEWAY_BIN not found: cargo build --profile gateway -p keygate-gateway"
fi
if [[ -n "$USAGE" ]]; then
    has_target c || kg_die "--usage needs target c (the keygate gateway)"
    [[ -x "$CP_BIN" ]] || kg_die "$CP_BIN not found: cargo build --release -p keygate-control-plane"
fi

# nginx_forwarding_headers — with --nginx-headers same, the forwarding contract the gateway
# keeps, so both proxies do the same work per request: client address, scheme and host to
# the backend, and a request id both ways.
nginx_forwarding_headers() {
    [[ "$NGINX_HEADERS" == same ]] || return 0
    cat <<'EOF'
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Request-Id $request_id;
    add_header X-Request-Id $request_id always;
EOF
}

# ----------------------------------------------------------- upstream

start_upstream

# --------------------------------------------------------------- seed

seed_gateway "$TOKENS" "$ROUTES"

declare -A PORT PROXY_PID
PORT[a]=$UP_PORT

# ------------------------------------------------- b: nginx key-check proxy

if has_target b; then
    NX_DIR=$WORK/nginx-proxy
    PORT[b]=$(kg_free_port)
    mkdir -p "$NX_DIR"
    {
        cat <<EOF
# nginx as an API-key-checking reverse proxy: the key must be one of the seeded keys
# (map), it is stripped before proxying, and each /svcNNN/ prefix is stripped.
daemon off;
worker_processes auto;
pid $NX_DIR/nginx.pid;
error_log $NX_DIR/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
$(nginx_temp_paths "$NX_DIR")
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    map_hash_bucket_size 128;
    map_hash_max_size 65536;
    map \$http_x_api_key \$kg_ok {
        default 0;
        include $SEED/nginx-keys.map;
    }
    upstream kg_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-API-Key "";
$(nginx_forwarding_headers)
    server {
        listen 127.0.0.1:${PORT[b]};
        if (\$kg_ok = 0) { return 401; }
EOF
        for ((i = 0; i < ROUTES; i++)); do
            printf '        location /svc%03d/ { proxy_pass http://kg_upstream/; }\n' "$i"
        done
        echo "        location / { return 404; }"
        echo "    }"
        echo "}"
    } >"$NX_DIR/nginx.conf"
    kg_log "b: nginx key-check proxy (worker_processes auto) on 127.0.0.1:${PORT[b]}"
    start_nginx nginx-proxy "$NX_DIR"
    PROXY_PID[b]=$NGINX_PID
    # /svc000/ with a seeded key is the readiness probe.
    deadline=$((SECONDS + 60))
    until [[ "$(http_code "http://127.0.0.1:${PORT[b]}$PATH0" -H "X-API-Key: $KEY0")" == 200 ]]; do
        kill -0 "${PROXY_PID[b]}" 2>/dev/null || {
            show_log "$NX_DIR/error.log"
            kg_die "nginx proxy exited before it was ready"
        }
        ((SECONDS < deadline)) || kg_die "nginx proxy not ready after 60 s"
        sleep 0.1
    done
    check_target "b (nginx proxy)" "http://127.0.0.1:${PORT[b]}"
fi

# --------------------------------------------------- c: keygate gateway

if has_target c; then
    GW_LOG=$WORK/gateway.log
    PORT[c]=$(kg_free_port)
    ADMIN_PORT=$(kg_free_port)
    kg_log "c: keygate gateway ($GATEWAY_BIN), usage off, on 127.0.0.1:${PORT[c]}, admin 127.0.0.1:$ADMIN_PORT"
    # c: usage reporting off (no gateway key). With --usage, d beside it: a control plane of
    # its own (SQLite in the work directory) writes a GATEWAY key for the embedded stack and
    # takes d's rollups and events. The edge key comes from the seeded file either way.
    start_native_gateway c "$ADMIN_PORT"
    if [[ -n "$USAGE" ]]; then
        start_control_plane
        PORT[d]=$(kg_free_port)
        ADMIN_PORT_D=$(kg_free_port)
        kg_log "d: keygate gateway, usage on, on 127.0.0.1:${PORT[d]}, admin 127.0.0.1:$ADMIN_PORT_D"
        start_native_gateway d "$ADMIN_PORT_D" KEYGATE_ADDR="http://127.0.0.1:$CP_PORT" \
            KEYGATE_GATEWAY_KEY_FILE="$WORK/cp/gateway.key" KEYGATE_GATEWAY_NAME=bench
    fi
fi

# ---------------------------------------------------------- measuring

ROUNDS_TSV=$WORK/rounds.tsv
declare -A WRK
: >"$ROUNDS_TSV"

# run_wrk TARGET SECONDS ROUND — one wrk run; ROUND 0 is the warm-up (not recorded).
run_wrk() {
    local t=$1 secs=$2 round=$3 out proxy_pids up_pids p0 p1 u0 u1
    out=$WORK/wrk-$t-r$round.txt
    up_pids=$(pids_of "$UP_PID")
    proxy_pids=
    [[ "$t" == a ]] || proxy_pids=$(pids_of "${PROXY_PID[$t]}")
    # shellcheck disable=SC2086 # word splitting of the pid lists is intended
    {
        u0=$(cpu_ticks $up_pids)
        p0=$(cpu_ticks $proxy_pids)
    }
    wrk_run "round $round, target $t" "$out" "$secs" "http://127.0.0.1:${PORT[$t]}"
    # shellcheck disable=SC2086
    {
        u1=$(cpu_ticks $up_pids)
        p1=$(cpu_ticks $proxy_pids)
    }
    local requests=${WRK[requests]} duration_us=${WRK[duration_us]} p50_us=${WRK[p50_us]} \
        p75_us=${WRK[p75_us]} p90_us=${WRK[p90_us]} p99_us=${WRK[p99_us]} max_us=${WRK[max_us]}
    ((round > 0)) || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$requests" "$duration_us" \
        "$p50_us" "$p75_us" "$p90_us" "$p99_us" "$max_us" $((p1 - p0)) $((u1 - u0)) >>"$ROUNDS_TSV"
    awk -v r="$round" -v t="$t" -v l="${LABEL[$t]}" -v n="$requests" -v d="$duration_us" \
        -v p50="$p50_us" -v p99="$p99_us" -v pt=$((p1 - p0)) -v ut=$((u1 - u0)) -v hz="$CLK_TCK" \
        'BEGIN { printf "    round %d  %s %-22s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  proxy CPU %s  upstream CPU %.2f s/100k\n",
                 r, t, l, n / (d / 1e6), p50 / 1000, p99 / 1000,
                 (t == "a" ? "-" : sprintf("%.2f s/100k", pt / hz / n * 1e5)), ut / hz / n * 1e5 }' >&2
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
[[ -z "$USAGE" ]] || CP_TICKS0=$(cpu_ticks "$CP_PID")
STARTED=$SECONDS
bench_rounds
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - STARTED))

# --usage: what reached the control plane. d flushes every 10 s: wait (bounded) until the
# control plane's rollup sum for d equals the requests d answered, then read both.
USAGE_JSON=null
if [[ -n "$USAGE" ]]; then
    CP_TICKS=$(($(cpu_ticks "$CP_PID") - CP_TICKS0))
    metric_sum() { # metric_sum NAME — the sum of every series of one metric of d
        curl -fsS "http://127.0.0.1:$ADMIN_PORT_D/metrics" |
            awk -v n="keygate_gateway_$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
    }
    deadline=$((SECONDS + 60))
    while :; do
        D_ANSWERED=$(metric_sum requests_total)
        D_STORED=$(stored_usage_calls bench)
        [[ "$D_STORED" == "$D_ANSWERED" ]] && break
        ((SECONDS < deadline)) || break
        sleep 1
    done
    D_ROLLUPS_DROPPED=$(metric_sum usage_rollups_dropped_total)
    D_EVENTS_DROPPED=$(metric_sum usage_events_dropped)
    D_EVENTS_SENT=$(metric_sum usage_events_sent)
    D_SEND_ERRORS=$(metric_sum usage_send_errors)
    CP_CPU_S=$(awk -v t="$CP_TICKS" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    V_COUNTED=$([[ "$D_STORED" == "$D_ANSWERED" && "$D_ROLLUPS_DROPPED" == 0 ]] && echo PASS || echo MISS)
    USAGE_JSON=$(printf '{"answered_by_d": %s, "stored_for_d": %s, "rollup_requests_dropped": %s, "events_sent": %s, "events_dropped": %s, "send_errors": %s, "control_plane_cpu_s": %s, "every_request_counted": "%s"}' \
        "$D_ANSWERED" "$D_STORED" "${D_ROLLUPS_DROPPED:-null}" "${D_EVENTS_SENT:-null}" "${D_EVENTS_DROPPED:-null}" "${D_SEND_ERRORS:-null}" "$CP_CPU_S" "$V_COUNTED")
fi

# ---------------------------------------------------------- reporting

# Per-round derived figures: round target rps p50_ms p75_ms p90_ms p99_ms max_ms proxy_cpu_s
# proxy_s_per_100k upstream_s_per_100k requests duration_s
DERIVED=$WORK/derived.tsv
awk -F'\t' -v hz="$CLK_TCK" 'BEGIN { OFS = "\t" } {
    n = $3; d = $4 / 1e6
    print $1, $2, n / d, $5 / 1000, $6 / 1000, $7 / 1000, $8 / 1000, $9 / 1000,
          $10 / hz, ($2 == "a" ? "null" : $10 / hz / n * 1e5), $11 / hz / n * 1e5, n, d
}' "$ROUNDS_TSV" >"$DERIVED"

declare -A MED
for t in "${TARGETS[@]}"; do
    for col in 3:rps 4:p50 7:p99 5:p75 6:p90 10:cpu 11:upcpu; do
        MED[$t.${col#*:}]=$(median "$DERIVED" "$t" "${col%:*}")
    done
done

echo
printf '== gateway benchmark: medians of %d rounds x %d s, %d connections, %d wrk threads, %d tokens, %d routes, nginx headers %s ==\n' \
    "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS" "$TOKENS" "$ROUTES" "$NGINX_HEADERS"
printf '%-26s %10s %9s %9s %18s %21s\n' target 'req/s' 'p50 ms' 'p99 ms' 'proxy CPU s/100k' 'upstream CPU s/100k'
for t in a b c d; do
    [[ "$t" == d && -z "$USAGE" ]] && continue
    if has_target "$t"; then
        printf '%-26s %10s %9s %9s %18s %21s\n' "$t  ${LABEL[$t]}" "$(fmt "${MED[$t.rps]}" %.0f)" \
            "$(fmt "${MED[$t.p50]}" %.2f)" "$(fmt "${MED[$t.p99]}" %.2f)" \
            "$(fmt "${MED[$t.cpu]}" %.2f)" "$(fmt "${MED[$t.upcpu]}" %.2f)"
    elif [[ "$t" == c && -n "$SKIPPED_C" ]]; then
        printf '%-26s %s\n' "c  ${LABEL[c]}" "not run: $SKIPPED_C"
    else
        printf '%-26s %s\n' "$t  ${LABEL[$t]}" "not run (--only $ONLY)"
    fi
done

# Ratios keygate / nginx, of the medians; and the verdicts.
R_RPS=null R_P99=null R_CPU=null V_RPS="not run" V_P99="not run"
if has_target b && has_target c; then
    R_RPS=$(ratio "${MED[c.rps]}" "${MED[b.rps]}")
    R_P99=$(ratio "${MED[c.p99]}" "${MED[b.p99]}")
    R_CPU=$(ratio "${MED[c.cpu]}" "${MED[b.cpu]}")
    V_RPS=$(awk -v r="$R_RPS" -v t="$THROUGHPUT_TARGET" 'BEGIN { print (r >= t) ? "PASS" : "MISS" }')
    V_P99=$(awk -v r="$R_P99" -v t="$P99_TARGET" 'BEGIN { print (r <= t) ? "PASS" : "MISS" }')
fi
echo
printf 'keygate/nginx throughput: %s (target >= %sx) %s\n' "$(fmt "$R_RPS" %.2fx)" "$THROUGHPUT_TARGET" "$V_RPS"
printf 'keygate/nginx p99:        %s (target <= %sx) %s\n' "$(fmt "$R_P99" %.2fx)" "$P99_TARGET" "$V_P99"
printf 'keygate/nginx CPU/100k:   %s (no target)\n' "$(fmt "$R_CPU" %.2fx)"
R_USAGE_RPS=null R_USAGE_CPU=null R_USAGE_NGINX=null
if [[ -n "$USAGE" ]]; then
    R_USAGE_RPS=$(ratio "${MED[d.rps]}" "${MED[c.rps]}")
    R_USAGE_CPU=$(ratio "${MED[d.cpu]}" "${MED[c.cpu]}")
    has_target b && R_USAGE_NGINX=$(ratio "${MED[d.rps]}" "${MED[b.rps]}")
    V_USAGE_RPS=$(awk -v r="$R_USAGE_RPS" 'BEGIN { print (r >= 0.95) ? "PASS" : "MISS" }')
    V_USAGE_CPU=$(awk -v r="$R_USAGE_CPU" 'BEGIN { print (r <= 1.05) ? "PASS" : "MISS" }')
    echo
    printf 'usage on / off throughput:    %s (target >= 0.95x) %s\n' "$(fmt "$R_USAGE_RPS" %.2fx)" "$V_USAGE_RPS"
    printf 'usage on / off CPU/request:   %s (target <= 1.05x) %s\n' "$(fmt "$R_USAGE_CPU" %.2fx)" "$V_USAGE_CPU"
    printf 'usage on / nginx throughput:  %s (reported)\n' "$(fmt "$R_USAGE_NGINX" %.2fx)"
    printf 'every request counted:        d answered %s, the control plane stored %s, %s rollup requests dropped: %s\n' \
        "$D_ANSWERED" "$D_STORED" "${D_ROLLUPS_DROPPED:-?}" "$V_COUNTED"
    printf 'raw events: %s sent, %s dropped, %s failed sends; control plane CPU %s s (it shares the 2 CPUs)\n' \
        "${D_EVENTS_SENT:-?}" "${D_EVENTS_DROPPED:-?}" "${D_SEND_ERRORS:-?}" "$CP_CPU_S"
fi
if [[ "$V_RPS" == "not run" ]]; then
    echo "(targets not judged: both b and c must run; ${SKIPPED_C:-see --only})"
fi
machine_info
printf '\n%s, commit %s%s, %s CPUs (%s), kernel %s, loadavg %s -> %s, %d s measuring\n' \
    "$DATE_UTC" "$COMMIT" "$([[ $DIRTY == true ]] && echo ' (working tree modified)')" "$(nproc)" \
    "$CPU_MODEL" "$(uname -r)" "$LOAD_START" "$LOAD_END" "$ELAPSED"

# ---------------------------------------------------------------- JSON

if [[ "$JSON_OUT" != - ]]; then
    mkdir -p "$(dirname "$JSON_OUT")"
    {
        echo "{"
        echo "  \"date_utc\": $(json_str "$DATE_UTC"),"
        echo "  \"git_commit\": $(json_str "$COMMIT"),"
        echo "  \"git_dirty\": $DIRTY,"
        echo "  \"command\": $(json_str "bench/gateway.sh $ORIG_ARGS"),"
        echo "  \"machine\": {\"nproc\": $(nproc), \"cpu\": $(json_str "$CPU_MODEL"), \"kernel\": $(json_str "$(uname -r)"), \"loadavg_start\": $(json_str "$LOAD_START"), \"loadavg_end\": $(json_str "$LOAD_END")},"
        echo "  \"tools\": {\"nginx\": $(json_str "$("$NGINX" -v 2>&1)"), \"wrk\": $(json_str "$(wrk -v 2>&1 | head -n 1)")},"
        echo "  \"options\": {\"duration_s\": $DURATION, \"rounds\": $ROUNDS, \"connections\": $CONNECTIONS, \"wrk_threads\": $THREADS, \"warmup_s\": $WARMUP, \"tokens\": $TOKENS, \"routes\": $ROUTES, \"nginx_headers\": \"$NGINX_HEADERS\", \"usage\": $([[ -n "$USAGE" ]] && echo true || echo false), \"targets\": [$(printf '"%s",' "${TARGETS[@]}" | sed 's/,$//')]},"
        if [[ -n "$SKIPPED_C" ]]; then
            echo "  \"skipped\": {\"c\": $(json_str "$SKIPPED_C")},"
        fi
        echo "  \"measuring_s\": $ELAPSED,"
        echo "  \"usage\": $USAGE_JSON,"
        echo "  \"rounds\": ["
        awk -F'\t' -v q='"' 'BEGIN { sep = "" } {
            printf "%s    {\"round\": %d, \"target\": %s%s%s, \"requests\": %d, \"duration_s\": %.3f, \"rps\": %.1f, \"p50_ms\": %.3f, \"p75_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"proxy_cpu_s\": %s, \"proxy_cpu_s_per_100k\": %s, \"upstream_cpu_s_per_100k\": %.3f}",
                sep, $1, q, $2, q, $12, $13, $3, $4, $5, $6, $7, $8,
                ($2 == "a" ? "null" : sprintf("%.2f", $9)), ($10 == "null" ? "null" : sprintf("%.3f", $10)), $11
            sep = ",\n"
        } END { print "" }' "$DERIVED"
        echo "  ],"
        echo "  \"medians\": {"
        sep=
        for t in "${TARGETS[@]}"; do
            printf '%s    "%s": {"label": %s, "rps": %s, "p50_ms": %s, "p75_ms": %s, "p90_ms": %s, "p99_ms": %s, "proxy_cpu_s_per_100k": %s, "upstream_cpu_s_per_100k": %s}' \
                "$sep" "$t" "$(json_str "${LABEL[$t]}")" "$(json_num "${MED[$t.rps]}")" "$(json_num "${MED[$t.p50]}")" \
                "$(json_num "${MED[$t.p75]}")" "$(json_num "${MED[$t.p90]}")" "$(json_num "${MED[$t.p99]}")" \
                "$(json_num "${MED[$t.cpu]}")" "$(json_num "${MED[$t.upcpu]}")"
            sep=$',\n'
        done
        echo
        echo "  },"
        echo "  \"ratios_keygate_over_nginx\": {\"throughput\": $(json_num "$R_RPS"), \"p99\": $(json_num "$R_P99"), \"cpu_per_100k\": $(json_num "$R_CPU")},"
        echo "  \"ratios_usage_on_over_off\": {\"throughput\": $(json_num "$R_USAGE_RPS"), \"cpu_per_100k\": $(json_num "$R_USAGE_CPU"), \"usage_on_over_nginx\": $(json_num "$R_USAGE_NGINX")},"
        echo "  \"targets\": ["
        echo "    {\"target\": \"throughput >= ${THROUGHPUT_TARGET}x nginx at $CONNECTIONS connections\", \"ratio\": $(json_num "$R_RPS"), \"result\": $(json_str "$V_RPS")},"
        echo "    {\"target\": \"p99 <= ${P99_TARGET}x nginx at $CONNECTIONS connections\", \"ratio\": $(json_num "$R_P99"), \"result\": $(json_str "$V_P99")}"
        echo "  ]"
        echo "}"
    } >"$JSON_OUT"
    kg_info "wrote $JSON_OUT"
fi
