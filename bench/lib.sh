# shellcheck shell=bash
# bench/lib.sh — what the wrk benchmarks (bench/gateway.sh, bench/worker.sh) share.
#
# Owns: the upstream every target stands in front of (a tiny nginx answering 200 and a small
# JSON body), the seeded tokens and routes (keygate-bench gateway-seed) and the check that a
# target honours them, a control plane for usage, one bounded wrk run and its verdict (any
# non-2xx or socket error fails the run), CPU ticks of processes, medians, ratios and the
# JSON helpers. A rule about how targets are measured lives here, once.
# Must not: choose targets, print reports, or stop anything it did not start.
#
# Source it after scripts/lib/common.sh, then call bench_init WORK_PREFIX. It uses the
# globals WORK (work directory), STARTED_PIDS (stopped in reverse by bench_cleanup), KEEP,
# NGINX, CLK_TCK, BENCH_BIN, CP_BIN, LUA.

# shellcheck source=scripts/lib/ensure.sh
source "$KG_ROOT/scripts/lib/ensure.sh"
# shellcheck source=scripts/lib/pg.sh
source "$KG_ROOT/scripts/lib/pg.sh" # kg_free_port

# bench_load_option ARGS... — the load options both benchmarks take (--duration, --rounds,
# --connections, --threads, --warmup, --tokens, --routes): when $1 is one, sets its variable
# (DURATION, ROUNDS, ...) from $2 and BENCH_SHIFT=2; otherwise BENCH_SHIFT=0.
bench_load_option() {
    local var
    case "$1" in
    --duration | --rounds | --connections | --threads | --warmup | --tokens | --routes) ;;
    *)
        BENCH_SHIFT=0
        return 0
        ;;
    esac
    (($# >= 2)) || kg_die "$1 needs a value"
    var=${1#--}
    printf -v "${var^^}" '%s' "$2"
    BENCH_SHIFT=2
}

# bench_check_load_options — the load options are valid (positive integers, warm-up a whole
# number of seconds, at least one connection per thread, at most 1000 routes).
bench_check_load_options() {
    local v
    for v in DURATION ROUNDS CONNECTIONS THREADS TOKENS ROUTES; do
        [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || kg_die "--${v,,} must be a positive integer"
    done
    [[ "$WARMUP" =~ ^[0-9]+$ ]] || kg_die "--warmup must be a whole number of seconds"
    ((CONNECTIONS >= THREADS)) || kg_die "--connections must be at least --threads"
    ((ROUTES <= 1000)) || kg_die "--routes must be at most 1000"
}

# bench_init PREFIX — tools (wrk, nginx, curl), the work directory /tmp/PREFIX.XXXXXX and the
# cleanup that stops every started process.
bench_init() {
    ensure_system_packages nginx curl
    kg_have wrk || ensure_apt_packages wrk
    kg_have wrk || kg_die "wrk still missing after installing it"
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    CLK_TCK=$(getconf CLK_TCK)
    TARGET_DIR=${CARGO_TARGET_DIR:-$KG_ROOT/target}
    BENCH_BIN=$TARGET_DIR/release/keygate-bench
    CP_BIN=$TARGET_DIR/release/keygate-control-plane
    LUA=$KG_ROOT/bench/gateway/requests.lua
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    # nginx workers may run as an unprivileged user; they must reach their temp directories.
    chmod 711 "$WORK"
    STARTED_PIDS=()
    kg_on_exit bench_cleanup
}

# stop_pid PID — TERM, wait up to 5 s, then KILL; also its children (nginx workers).
stop_pid() {
    local pid=$1 kids i
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kg_warn "process $pid ($(ps -o comm= -p "$pid" 2>/dev/null || echo ?)) did not stop on TERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for i in $kids; do
        kill -KILL "$i" 2>/dev/null || true
    done
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local i
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${STARTED_PIDS[i]}"
    done
    if [[ -n "${KEEP:-}" ]]; then
        kg_info "kept the work directory: $WORK"
    else
        rm -rf "$WORK"
    fi
}

# show_log FILE — the end of a log, indented.
show_log() {
    [[ -s "$1" ]] || return 0
    kg_info "last lines of $1:"
    tail -n 30 "$1" | sed 's/^/    | /' >&2
}

# http_code URL [curl args...] — the status code, or 000 when nothing answered.
http_code() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true
}

# wait_http NAME PID URL LOG — poll URL until it answers 200, while PID lives (60 s cap).
wait_http() {
    local name=$1 pid=$2 url=$3 log=$4 deadline=$((SECONDS + 60)) code
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            kg_die "$name exited before it was ready"
        fi
        code=$(http_code "$url")
        [[ "$code" == 200 ]] && return 0
        if ((SECONDS >= deadline)); then
            show_log "$log"
            kg_die "$name not ready after 60 s ($url answered $code)"
        fi
        sleep 0.1
    done
}

# nginx_temp_paths DIR — temp path directives under DIR, for the modules this nginx has.
nginx_temp_paths() {
    local dir=$1 v m
    v=$("$NGINX" -V 2>&1)
    echo "    client_body_temp_path $dir/tmp/body;"
    echo "    proxy_temp_path $dir/tmp/proxy;"
    for m in fastcgi uwsgi scgi; do
        [[ "$v" == *"--without-http_${m}_module"* ]] || echo "    ${m}_temp_path $dir/tmp/$m;"
    done
}

# start_nginx NAME DIR — run nginx in the foreground of a background job with DIR/nginx.conf;
# sets NGINX_PID (the master).
start_nginx() {
    local name=$1 dir=$2
    mkdir -p "$dir/tmp"
    chmod 755 "$dir" "$dir/tmp"
    "$NGINX" -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" 2>"$dir/test.log" || {
        show_log "$dir/test.log"
        kg_die "$name: nginx rejected its configuration ($dir/nginx.conf)"
    }
    "$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    STARTED_PIDS+=("$NGINX_PID")
}

# start_upstream — the upstream, nginx with one worker; sets UP_PORT, UP_PID, UPSTREAM.
start_upstream() {
    local dir=$WORK/upstream
    UP_PORT=$(kg_free_port)
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
# The upstream: answers 200 and a small JSON body to any method and path. The body echoes
# the path it got and whether an X-API-Key reached it, so the script can check each proxy.
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
$(nginx_temp_paths "$dir")
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    map \$http_x_api_key \$kg_key_sent { "" no; default yes; }
    server {
        listen 127.0.0.1:$UP_PORT;
        default_type application/json;
        location / { return 200 '{"ok":true,"from":"upstream","uri":"\$uri","key_sent":"\$kg_key_sent"}'; }
    }
}
EOF
    kg_log "upstream: nginx (1 worker) on 127.0.0.1:$UP_PORT"
    start_nginx upstream "$dir"
    UP_PID=$NGINX_PID
    wait_http upstream "$UP_PID" "http://127.0.0.1:$UP_PORT/" "$dir/error.log"
    UPSTREAM=http://127.0.0.1:$UP_PORT
}

# seed_gateway TOKENS ROUTES — keygate-bench gateway-seed: $WORK/kv.db (a local KV as kv-sync
# leaves it), $WORK/edge.key and $SEED/{keys,paths}.txt for wrk; sets SEED, KEY0, PATH0.
seed_gateway() {
    SEED=$WORK/seed
    kg_log "seeding $1 tokens and $2 routes (keygate-bench gateway-seed)"
    "$BENCH_BIN" gateway-seed --kv "$WORK/kv.db" --edge-key "$WORK/edge.key" --out "$SEED" \
        --tokens "$1" --routes "$2" --upstream "$UPSTREAM"
    KEY0=$(head -n 1 "$SEED/keys.txt")
    PATH0=$(head -n 1 "$SEED/paths.txt")
}

# check_target NAME BASE_URL — a seeded key reaches the upstream with the route prefix
# stripped and without the key; a wrong key or none is refused with 401.
check_target() {
    local name=$1 base=$2 body code want_uri=/${PATH0#/*/}
    body=$(curl -s --max-time 5 -H "X-API-Key: $KEY0" "$base$PATH0") || true
    [[ "$body" == *'"from":"upstream"'* ]] ||
        kg_die "$name: a seeded key on $PATH0 did not reach the upstream (got: ${body:0:200})"
    [[ "$body" == *"\"uri\":\"$want_uri\""* ]] ||
        kg_die "$name: $PATH0 reached the upstream as something else than $want_uri (got: ${body:0:200})"
    [[ "$body" == *'"key_sent":"no"'* ]] ||
        kg_die "$name: the X-API-Key header was forwarded to the upstream"
    code=$(http_code "$base$PATH0" -H "X-API-Key: kg_not_a_real_key")
    [[ "$code" == 401 ]] || kg_die "$name: a wrong key got HTTP $code, not 401"
    code=$(http_code "$base$PATH0")
    [[ "$code" == 401 ]] || kg_die "$name: a request without a key got HTTP $code, not 401"
}

# start_native_gateway TARGET ADMIN_PORT [ENV=VALUE...] — the native gateway ($GATEWAY_BIN) on
# 127.0.0.1:${PORT[TARGET]} (admin on ADMIN_PORT) over the seeded local KV and edge key,
# usage off unless ENV turns it on; waits for /readyz, then check_target. Sets
# PROXY_PID[TARGET]; logs to $WORK/gateway-TARGET.log.
start_native_gateway() {
    local t=$1 admin=$2 log=$WORK/gateway-$1.log
    shift 2
    env -u KEYGATE_GATEWAY_KEY -u KEYGATE_GATEWAY_KEY_FILE -u KEYGATE_EDGE_KEY \
        "$@" \
        KEYGATE_GATEWAY_LISTEN="127.0.0.1:${PORT[$t]}" \
        KEYGATE_GATEWAY_ADMIN_LISTEN="127.0.0.1:$admin" \
        KEYGATE_KV_PATH="$WORK/kv.db" \
        KEYGATE_EDGE_KEY_FILE="$WORK/edge.key" \
        KEYGATE_LOG=warn \
        "$GATEWAY_BIN" >"$log" 2>&1 &
    PROXY_PID[$t]=$!
    STARTED_PIDS+=("${PROXY_PID[$t]}")
    wait_http "gateway $t" "${PROXY_PID[$t]}" "http://127.0.0.1:$admin/readyz" "$log"
    check_target "$t (${LABEL[$t]})" "http://127.0.0.1:${PORT[$t]}"
}

# start_control_plane — target/release/keygate-control-plane on SQLite in $WORK/cp, with its
# embedded service keys (the GATEWAY key in $WORK/cp/gateway.key); sets CP_PID, CP_PORT, CP_LOG.
start_control_plane() {
    local deadline
    CP_PORT=$(kg_free_port)
    CP_LOG=$WORK/control-plane.log
    kg_log "control plane ($CP_BIN) on 127.0.0.1:$CP_PORT, SQLite, for usage"
    env -u DATABASE_URL -u KEYGATE_MASTER_KEY \
        KEYGATE_DATA_DIR="$WORK/cp" KEYGATE_LISTEN="127.0.0.1:$CP_PORT" \
        KEYGATE_EMBEDDED_SERVICE_KEYS=true KEYGATE_LOG=warn \
        "$CP_BIN" >"$CP_LOG" 2>&1 &
    CP_PID=$!
    STARTED_PIDS+=("$CP_PID")
    deadline=$((SECONDS + 60))
    until [[ -s "$WORK/cp/gateway.key" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$CP_PORT") 2>/dev/null; do
        kill -0 "$CP_PID" 2>/dev/null || {
            show_log "$CP_LOG"
            kg_die "the control plane exited before it was ready"
        }
        ((SECONDS < deadline)) || {
            show_log "$CP_LOG"
            kg_die "the control plane was not ready after 60 s"
        }
        sleep 0.1
    done
}

# stored_usage_calls DIM_KEY_LIKE — the control plane's stored request count (its `gateway`
# series, day tier) of the gateways whose name matches the SQL LIKE pattern.
stored_usage_calls() {
    python3 - "$WORK/cp/keygate.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
row = db.execute("SELECT COALESCE(SUM(calls), 0) FROM usage_series_day "
                 "WHERE dim = 'gateway' AND dim_key LIKE ?", (sys.argv[2],)).fetchone()
print(row[0])
PY
}

# cpu_ticks PID... — utime + stime of these processes, in clock ticks. Fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) ||
            kg_die "process $pid is gone"
        total=$((total + t))
    done
    echo "$total"
}

# pids_of PID — the process and its children (an nginx master and its workers).
pids_of() {
    {
        echo "$1"
        pgrep -P "$1" || true
    } | tr '\n' ' '
}

# wrk_run LABEL OUT SECONDS URL — one wrk run (bounded: killed 30 s after its duration) with
# requests.lua over $SEED/keys.txt and paths.txt; fails the script on a non-2xx response, a
# socket error or no request at all. Fills the associative array WRK (requests, duration_us,
# p50_us, p75_us, p90_us, p99_us, max_us, ...). Declare `declare -A WRK` before calling.
wrk_run() {
    local label=$1 out=$2 secs=$3 url=$4 rc kv pair
    set +e
    timeout -k 5 $((secs + 30)) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --timeout 5s \
        --latency -s "$LUA" "$url" -- "$SEED/keys.txt" "$SEED/paths.txt" "$THREADS" >"$out" 2>&1
    rc=$?
    set -e
    if ((rc != 0)); then
        sed 's/^/    | /' "$out" >&2
        kg_die "$label: wrk failed (exit $rc)"
    fi
    kv=$(sed -n 's/^KGWRK //p' "$out")
    [[ -n "$kv" ]] || {
        sed 's/^/    | /' "$out" >&2
        kg_die "$label: wrk printed no KGWRK line"
    }
    WRK=()
    for pair in $kv; do
        WRK[${pair%%=*}]=${pair#*=}
    done
    if ((${WRK[non2xx]} > 0)) || grep -q 'Non-2xx or 3xx responses' "$out"; then
        sed 's/^/    | /' "$out" >&2
        kg_die "$label: ${WRK[non2xx]} non-2xx responses out of ${WRK[requests]}; the figures would be worthless"
    fi
    if ((${WRK[connect]} + ${WRK[read]} + ${WRK[write]} + ${WRK[timeout]} > 0)); then
        sed 's/^/    | /' "$out" >&2
        kg_die "$label: socket errors (connect ${WRK[connect]}, read ${WRK[read]}, write ${WRK[write]}, timeout ${WRK[timeout]})"
    fi
    ((${WRK[requests]} > 0)) || kg_die "$label: no requests completed"
}

# median FILE TARGET COLUMN — median over the rows of FILE (tab-separated, target in column 2)
# of one column; "null" when there is none. Printed as a JSON number (%.4f).
median() {
    awk -F'\t' -v t="$2" -v c="$3" '$2 == t && $c != "null" { v[++n] = $c } END {
        if (n == 0) { print "null"; exit }
        for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        printf "%.4f\n", m
    }' "$1"
}

# ratio X Y — X / Y as "%.4f", or null.
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "null" || y == "null" || x == "" || y == "" || y + 0 == 0) print "null"; else printf "%.4f\n", x / y }'; }
# fmt VALUE PRINTF_FORMAT — for the text report; "-" for null.
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "null" || v == "") print "-"; else printf f, v }'; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
# Values from median() and ratio() are already JSON numbers ("%.4f") or null.
json_num() { echo "${1:-null}"; }

# machine_info — sets COMMIT, DIRTY (true/false) and CPU_MODEL.
machine_info() {
    COMMIT=$(git -C "$KG_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    DIRTY=false
    git -C "$KG_ROOT" diff --quiet HEAD 2>/dev/null || DIRTY=true
    CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
}

# The measurement plan both benchmarks follow: a warm-up of WARMUP s per target, then ROUNDS
# interleaved rounds of DURATION s, the order rotated each round so no target always runs
# first or last. The caller defines `run_wrk TARGET SECONDS ROUND` (round 0: warm-up) and
# sets TARGETS, WARMUP, ROUNDS, DURATION, CONNECTIONS, THREADS.
bench_rounds() {
    local t r k nt
    if ((WARMUP > 0)); then
        kg_log "warm-up: ${WARMUP} s per target (${TARGETS[*]})"
        for t in "${TARGETS[@]}"; do
            run_wrk "$t" "$WARMUP" 0
        done
    fi
    kg_log "measuring: $ROUNDS rounds x ${DURATION} s per target, $CONNECTIONS connections, $THREADS wrk threads"
    nt=${#TARGETS[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < nt; k++)); do
            run_wrk "${TARGETS[(k + r - 1) % nt]}" "$DURATION" "$r"
        done
    done
}
