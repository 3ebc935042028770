#!/usr/bin/env bash
# scripts/run.sh — THE run command: builds Keygate and runs the whole stack on
# embedded defaults until Ctrl-C: the control plane (SQLite under ./data) with
# the admin UI on its own port, kv-sync into the local KV file, and the native
# gateway reading it — under a small supervisor.
#
# Usage: ./scripts/run.sh
#
# Environment:
#   KEYGATE_DATA_DIR   data directory (default ./data): keygate.db, kv.db, key
#                      files, the first-start setup code, logs/ (one per service),
#                      run/<service>.pid (the PID the supervisor holds now)
#   KEYGATE_LISTEN     control plane gRPC + grpc-web + admin UI address (default 127.0.0.1:7000)
#   KEYGATE_GATEWAY_LISTEN        gateway address (default 127.0.0.1:8080)
#   KEYGATE_GATEWAY_ADMIN_LISTEN  gateway /readyz, /metrics (default 127.0.0.1:9465)
#   KEYGATE_LEGACY_PREFIXES       gateway: also accept old keys with these prefixes (`ntk` after
#                                 `keygate import old-system`; docs/migrating.md)
#   KEYGATE_SYNC_METRICS_LISTEN   kv-sync /metrics (default 127.0.0.1:9464)
#   KEYGATE_BUILD_PROFILE  release (default: release binaries, the gateway with its
#                      own LTO profile; slow first build) or dev (debug binaries from
#                      target/debug; quick, for tests and development)
#   KEYGATE_BUILD_UI   1 (default): build the admin UI first (npm ci when needed,
#                      vite build); 0: skip it and use whatever admin-web/dist holds
#
# Supervision: services run in the background, each with its PID recorded. A
# service that exits on its own (crash, kill -9, any status) is restarted with the
# same command line and environment, after a backoff of 1 s, doubled after each
# further restart up to 30 s, back to 1 s once it has stayed up 60 s; the others
# keep running. Each restart is logged here and in the service's log. More than
# 5 restarts of one service within 60 s: the whole stack stops, saying why.
# Only Ctrl-C / TERM (or that limit) stops everything, and then exactly the PIDs
# this script started (restarts included) are stopped. The gateway's public
# socket is opened by this script (with python3) and handed to each gateway
# process (LISTEN_FDS): while a killed gateway restarts, callers wait in the
# socket's backlog instead of being refused.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/ensure.sh
source "$KG_ROOT/scripts/lib/ensure.sh"

case "${1:-}" in
-h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
"") ;;
*) kg_die "unknown argument: $1 (see --help)" ;;
esac

cd "$KG_ROOT"

export KEYGATE_DATA_DIR=${KEYGATE_DATA_DIR:-./data}
export KEYGATE_LISTEN=${KEYGATE_LISTEN:-127.0.0.1:7000}
GATEWAY_LISTEN=${KEYGATE_GATEWAY_LISTEN:-127.0.0.1:8080}
GATEWAY_ADMIN_LISTEN=${KEYGATE_GATEWAY_ADMIN_LISTEN:-127.0.0.1:9465}
SYNC_METRICS_LISTEN=${KEYGATE_SYNC_METRICS_LISTEN:-127.0.0.1:9464}
LOG_DIR=$KEYGATE_DATA_DIR/logs
RUN_DIR=$KEYGATE_DATA_DIR/run
BUILD_PROFILE=${KEYGATE_BUILD_PROFILE:-release}
BUILD_UI=${KEYGATE_BUILD_UI:-1}
case "$BUILD_PROFILE" in
release | dev) ;;
*) kg_die "KEYGATE_BUILD_PROFILE must be release or dev, not '$BUILD_PROFILE'" ;;
esac
case "$BUILD_UI" in
0 | 1) ;;
*) kg_die "KEYGATE_BUILD_UI must be 0 or 1, not '$BUILD_UI'" ;;
esac
STARTUP_DEADLINE_SECS=60
STOP_GRACE_SECS=10

# The gateway's public socket is opened once, here, and handed to every gateway process this
# script starts (socket activation: LISTEN_FDS=1, the socket on fd 3). It outlives a killed
# gateway, so while the supervisor restarts it, callers' connections wait in the socket's
# backlog instead of being refused. Bash cannot open a listening socket: python3 opens it,
# puts it on fd GATEWAY_FD and runs this script again (same PID, same arguments and stdin).
GATEWAY_FD=9
if [[ -z "${KEYGATE_RUN_GATEWAY_SOCKET:-}" ]]; then
    kg_have python3 || kg_die "python3 is needed to hold the gateway's socket (apt-get install -y python3)"
    exec python3 -c '
import os, socket, sys
addr, fd, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host, _, port = addr.rpartition(":")
host = host.strip("[]") or "0.0.0.0"
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((host, int(port)))
except (OSError, ValueError) as e:
    sys.exit(f"error: gateway: cannot listen on {addr}: {e} (another ./scripts/run.sh? set KEYGATE_GATEWAY_LISTEN)")
s.listen(1024)
os.dup2(s.fileno(), fd)
os.environ["KEYGATE_RUN_GATEWAY_SOCKET"] = addr
os.execvp("bash", ["bash", script] + sys.argv[4:])
' "$GATEWAY_LISTEN" "$GATEWAY_FD" "$KG_ROOT/scripts/run.sh" "$@"
fi

# Supervision: backoff before restart attempt n is min(1 s * 2^(n-1), 30 s); a service
# that stayed up STABLE_SECS starts again at attempt 1. At most RESTART_LIMIT restarts of
# one service within RESTART_WINDOW_SECS; one more exit and the whole stack stops.
BACKOFF_FIRST_SECS=1
BACKOFF_MAX_SECS=30
STABLE_SECS=60
RESTART_LIMIT=5
RESTART_WINDOW_SECS=60
POLL_SECS=0.2
exec {STDERR_FD}>&2 # the terminal, for messages from the trap (see stop_services)

# ------------------------------------------------------------ services
#
# One entry per service, index i in every array:
#   SERVICE_NAMES[i]   name (also of its log file and pid file)
#   SERVICE_CMDS[i]    its command line with its environment (`env VAR=... BIN`), shell-quoted:
#                      every start and restart runs exactly this
#   SERVICE_READY[i]   HOST:PORT that accepts connections when it is ready
#   SERVICE_LOGS[i]    its log file
#   SERVICE_PIDS[i]    the PID running now; empty while it waits for a restart
#   SERVICE_UP_US[i]   when that PID was started (microseconds)
#   SERVICE_ATTEMPT[i] restarts since it last stayed up STABLE_SECS
#   SERVICE_DUE_US[i]  when the pending restart is due (empty: none pending)
#   SERVICE_DOWN_US[i] when it went down (empty: up and ready)
#   SERVICE_RESTARTS[i] times of its restarts (microseconds, space separated)
# stop_services signals exactly the PIDs in SERVICE_PIDS, which always holds the PIDs
# this script started and has not yet seen exit.

SERVICE_NAMES=()
SERVICE_CMDS=()
SERVICE_READY=()
SERVICE_LOGS=()
SERVICE_PIDS=()
SERVICE_UP_US=()
SERVICE_ATTEMPT=()
SERVICE_DUE_US=()
SERVICE_DOWN_US=()
SERVICE_RESTARTS=()

utc_now() { date -u +%FT%TZ; }

# svc_note I LEVEL MESSAGE — say MESSAGE on the terminal and append it to service I's log.
svc_note() {
    local i=$1 level=$2 msg="${SERVICE_NAMES[$1]}: $3"
    case "$level" in
    warn) kg_warn "$msg" ;;
    *) kg_info "$msg" ;;
    esac
    printf -- '---- %s: supervisor: %s\n' "$(utc_now)" "$msg" >>"${SERVICE_LOGS[i]}"
}

# launch I — start service I's stored command in the background; record and publish its PID.
launch() {
    local i=$1 pid
    # exec: the PID we record is the service's own, not a wrapper's. Only the gateway gets
    # the held socket (as fd 3); the others do not keep it open.
    local fds="$GATEWAY_FD<&-"
    [[ "${SERVICE_NAMES[i]}" != gateway ]] || fds="3<&$GATEWAY_FD $fds"
    (eval "exec ${SERVICE_CMDS[i]} $fds") >>"${SERVICE_LOGS[i]}" 2>&1 </dev/null &
    pid=$!
    SERVICE_PIDS[i]=$pid
    SERVICE_UP_US[i]=$(kg_now_us)
    printf '%s\n' "$pid" >"$RUN_DIR/${SERVICE_NAMES[i]}.pid.tmp"
    mv -f "$RUN_DIR/${SERVICE_NAMES[i]}.pid.tmp" "$RUN_DIR/${SERVICE_NAMES[i]}.pid"
}

# start_service NAME READY_ADDR [VAR=VALUE...] BIN — register the service and start it,
# logging to LOG_DIR/NAME.log. The variables are passed to BIN (through env) on every start.
start_service() {
    local name=$1 ready=$2 i arg vars=()
    shift 2
    i=${#SERVICE_NAMES[@]}
    SERVICE_NAMES+=("$name")
    SERVICE_CMDS+=("$(printf '%q ' env "$@")")
    SERVICE_READY+=("$ready")
    SERVICE_LOGS+=("$LOG_DIR/$name.log")
    SERVICE_PIDS+=("")
    SERVICE_UP_US+=(0)
    SERVICE_ATTEMPT+=(0)
    SERVICE_DUE_US+=("")
    SERVICE_DOWN_US+=("")
    SERVICE_RESTARTS+=("")
    for arg in "$@"; do
        [[ "$arg" == *=* ]] && vars+=("${arg%%=*}")
    done
    # Variable names only: values may be paths to keys today and keys tomorrow.
    printf '\n---- %s: starting %s (with %s)\n' "$(utc_now)" "${*: -1}" "${vars[*]:-no extra variables}" \
        >>"${SERVICE_LOGS[i]}"
    launch "$i"
    kg_info "$name started (pid ${SERVICE_PIDS[i]}, log ${SERVICE_LOGS[i]})"
}

service_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

service_index() { # NAME -> index
    local i
    for i in "${!SERVICE_NAMES[@]}"; do
        if [[ "${SERVICE_NAMES[i]}" == "$1" ]]; then
            printf '%s\n' "$i"
            return 0
        fi
    done
    return 1
}

log_tail() { # LOGFILE
    kg_info "last lines of $1:"
    tail -n 40 "$1" | sed 's/^/    | /' >&2
}

# describe_status STATUS — "exit status 3" or "killed by SIGKILL (status 137)".
describe_status() {
    local rc=$1 sig
    if ((rc > 128)) && sig=$(kill -l $((rc - 128)) 2>/dev/null); then
        printf 'killed by SIG%s (status %s)' "$sig" "$rc"
    else
        printf 'exit status %s' "$rc"
    fi
}

secs() { kg_fmt_us "$1"; } # MICROSECONDS -> "1.2s"

# shellcheck disable=SC2317 # called from the EXIT/INT/TERM trap
stop_services() {
    local i pid deadline
    # A signal may arrive while supervise has stderr on /dev/null: say what we do.
    exec 2>&"$STDERR_FD"
    ((${#SERVICE_PIDS[@]} > 0)) || return 0
    kg_log "stopping services"
    for i in "${!SERVICE_PIDS[@]}"; do
        SERVICE_DUE_US[i]= # no restart from here on
        pid=${SERVICE_PIDS[i]}
        if service_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    deadline=$((SECONDS + STOP_GRACE_SECS))
    for i in "${!SERVICE_PIDS[@]}"; do
        pid=${SERVICE_PIDS[i]}
        [[ -n "$pid" ]] || continue
        while service_alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if service_alive "$pid"; then
            kg_warn "${SERVICE_NAMES[i]} (pid $pid) did not stop in ${STOP_GRACE_SECS}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        rm -f "$RUN_DIR/${SERVICE_NAMES[i]}.pid"
        kg_info "${SERVICE_NAMES[i]} stopped"
    done
    SERVICE_PIDS=()
}

# connect_host_port HOST:PORT — "HOST PORT" to connect to (wildcards -> loopback).
connect_host_port() {
    local host=${1%:*} port=${1##*:}
    host=${host#[}
    host=${host%]}
    case "$host" in
    0.0.0.0 | "") host=127.0.0.1 ;;
    ::) host=::1 ;;
    esac
    printf '%s %s\n' "$host" "$port"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

addr_open() { # HOST:PORT
    local host port
    read -r host port < <(connect_host_port "$1")
    tcp_open "$host" "$port"
}

# ensure_port_free NAME HOST:PORT — refuse to start if something already
# listens there (it would look like our service being ready).
ensure_port_free() {
    if addr_open "$2"; then
        kg_die "$1: $2 is already in use (another ./scripts/run.sh?); set KEYGATE_LISTEN to another address"
    fi
}

# wait_ready NAME — at startup: poll until the service's ready address accepts a TCP
# connection, with a deadline; fail early if the service exits.
wait_ready() {
    local i deadline
    i=$(service_index "$1")
    deadline=$((SECONDS + STARTUP_DEADLINE_SECS))
    while :; do
        if addr_open "${SERVICE_READY[i]}"; then
            return 0
        fi
        if ! service_alive "${SERVICE_PIDS[i]}"; then
            kg_warn "$1 exited during startup"
            log_tail "${SERVICE_LOGS[i]}"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            kg_warn "$1 did not accept connections on ${SERVICE_READY[i]} within ${STARTUP_DEADLINE_SECS}s"
            log_tail "${SERVICE_LOGS[i]}"
            return 1
        fi
        sleep 0.1
    done
}

# on_exit I STATUS NOW — service I's PID exited: schedule a restart with backoff, or, past
# the restart limit, stop the whole stack.
on_exit() {
    local i=$1 rc=$2 now=$3 up t recent=() delay attempt
    up=$((now - SERVICE_UP_US[i]))
    SERVICE_PIDS[i]=
    rm -f "$RUN_DIR/${SERVICE_NAMES[i]}.pid"
    [[ -n "${SERVICE_DOWN_US[i]}" ]] || SERVICE_DOWN_US[i]=$now
    if ((up >= STABLE_SECS * 1000000)); then
        SERVICE_ATTEMPT[i]=0
    fi
    for t in ${SERVICE_RESTARTS[i]}; do
        ((now - t < RESTART_WINDOW_SECS * 1000000)) && recent+=("$t")
    done
    SERVICE_RESTARTS[i]=${recent[*]:-}
    if ((${#recent[@]} >= RESTART_LIMIT)); then
        svc_note "$i" warn "$(describe_status "$rc") after $(secs "$up") up; it was restarted ${#recent[@]} times within ${RESTART_WINDOW_SECS}s (limit $RESTART_LIMIT): giving up"
        log_tail "${SERVICE_LOGS[i]}"
        kg_warn "stopping the whole stack: ${SERVICE_NAMES[i]} keeps exiting; see its log ${SERVICE_LOGS[i]}"
        exit 1
    fi
    attempt=$((SERVICE_ATTEMPT[i] + 1))
    SERVICE_ATTEMPT[i]=$attempt
    delay=$((BACKOFF_FIRST_SECS << (attempt - 1)))
    ((attempt <= 16 && delay <= BACKOFF_MAX_SECS)) || delay=$BACKOFF_MAX_SECS
    SERVICE_DUE_US[i]=$((now + delay * 1000000))
    svc_note "$i" warn "$(describe_status "$rc") after $(secs "$up") up; restart attempt $attempt in ${delay}s (restarts within ${RESTART_WINDOW_SECS}s: ${#recent[@]} of $RESTART_LIMIT)"
}

# restart I — the pending restart of service I is due: start its stored command again.
restart() {
    local i=$1
    SERVICE_DUE_US[i]=
    SERVICE_RESTARTS[i]="${SERVICE_RESTARTS[i]:+${SERVICE_RESTARTS[i]} }$(kg_now_us)"
    printf -- '---- %s: restarting (attempt %s)\n' "$(utc_now)" "${SERVICE_ATTEMPT[i]}" >>"${SERVICE_LOGS[i]}"
    launch "$i"
    svc_note "$i" info "restarted (pid ${SERVICE_PIDS[i]}, attempt ${SERVICE_ATTEMPT[i]}); waiting for ${SERVICE_READY[i]}"
}

# supervise — until a signal or the restart limit ends the script: notice exits,
# restart when due, report when a restarted service is ready again.
supervise() {
    local i pid rc now
    while :; do
        for i in "${!SERVICE_NAMES[@]}"; do
            pid=${SERVICE_PIDS[i]}
            now=$(kg_now_us)
            if [[ -n "$pid" ]]; then
                if service_alive "$pid"; then
                    if [[ -n "${SERVICE_DOWN_US[i]}" ]] && addr_open "${SERVICE_READY[i]}"; then
                        svc_note "$i" info "ready again (pid $pid; down $(secs $((now - SERVICE_DOWN_US[i]))))"
                        SERVICE_DOWN_US[i]=
                    fi
                    continue
                fi
                rc=0
                wait "$pid" 2>/dev/null || rc=$?
                on_exit "$i" "$rc" "$now"
            elif [[ -n "${SERVICE_DUE_US[i]}" ]] && ((now >= SERVICE_DUE_US[i])); then
                restart "$i"
            fi
        done
        # bash announces a killed background job ("line N: PID Killed ( eval ... )") on
        # stderr when it reaps it, mostly during this sleep; the line above says it better.
        { sleep "$POLL_SECS"; } 2>/dev/null
    done
}

# ----------------------------------------------------------------- run

kg_log "checking toolchain"
ensure_system_packages build
kg_have cargo || kg_die "cargo not found: install Rust with rustup first"

# The admin UI is built first: the release control plane embeds admin-web/dist.
if [[ "$BUILD_UI" == 1 ]]; then
    kg_log "building the admin UI (admin-web: npm ci when needed, vite build)"
    ensure_admin_web_packages
    (cd "$KG_ROOT/admin-web" && npm run --silent build)
else
    kg_log "not building the admin UI (KEYGATE_BUILD_UI=0): using what admin-web/dist holds"
fi

# Where cargo puts the binaries (honours CARGO_TARGET_DIR and .cargo/config).
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked |
    grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
TARGET_DIR=${TARGET_DIR:-$KG_ROOT/target}
if [[ "$BUILD_PROFILE" == release ]]; then
    kg_log "building (release; the gateway with its own whole-program-optimised profile)"
    cargo build --release --locked -p keygate-control-plane -p keygate-cli -p keygate-kv-sync
    cargo build --profile gateway --locked -p keygate-gateway
    BIN_DIR=$TARGET_DIR/release
    GATEWAY_BIN=$TARGET_DIR/gateway/keygate-gateway
else
    kg_log "building (dev profile: debug binaries, KEYGATE_BUILD_PROFILE=dev)"
    cargo build --locked -p keygate-control-plane -p keygate-cli -p keygate-kv-sync -p keygate-gateway
    BIN_DIR=$TARGET_DIR/debug
    GATEWAY_BIN=$TARGET_DIR/debug/keygate-gateway
fi
BIN_DIR_SHOWN=${BIN_DIR#"$KG_ROOT"/}

# The data dir holds the database and key files, and a first start prints the
# one-time setup code to the control plane's log: keep all of it private to the user.
umask 077
mkdir -p "$KEYGATE_DATA_DIR" "$LOG_DIR" "$RUN_DIR"
kg_on_exit stop_services

kg_log "starting services"
# In dependency order, each with a readiness wait. The admin UI is served by the control plane.
ensure_port_free control-plane "$KEYGATE_LISTEN"
ensure_port_free kv-sync "$SYNC_METRICS_LISTEN"
# (The gateway's own address is held by this script since its start.)
ensure_port_free gateway-admin "$GATEWAY_ADMIN_LISTEN"

DATA_ABS=$(cd "$KEYGATE_DATA_DIR" && pwd)
SETUP_FILE=$DATA_ABS/setup-code
URL_HOST=$KEYGATE_LISTEN
case "$URL_HOST" in 0.0.0.0:*) URL_HOST=127.0.0.1:${URL_HOST##*:} ;; esac
read -r GW_HOST GW_PORT < <(connect_host_port "$GATEWAY_LISTEN")
GATEWAY_URL=http://$GW_HOST:$GW_PORT
read -r GWA_HOST GWA_PORT < <(connect_host_port "$GATEWAY_ADMIN_LISTEN")

# The control plane writes the SYNC and GATEWAY service-account keys of this embedded stack
# (data/kv-sync.key, data/gateway.key, mode 0600) before it listens.
start_service control-plane "$KEYGATE_LISTEN" \
    KEYGATE_EMBEDDED_SERVICE_KEYS=true \
    KEYGATE_GATEWAY_PUBLIC_URL="${KEYGATE_PUBLIC_URL:-$GATEWAY_URL}" \
    "$BIN_DIR/keygate-control-plane"
wait_ready control-plane

start_service kv-sync "$SYNC_METRICS_LISTEN" \
    KEYGATE_ADDR="http://$URL_HOST" \
    KEYGATE_SYNC_KEY_FILE="$DATA_ABS/kv-sync.key" \
    KEYGATE_KV=sqlite \
    KEYGATE_KV_PATH="$DATA_ABS/kv.db" \
    KEYGATE_SYNC_METRICS_LISTEN="$SYNC_METRICS_LISTEN" \
    "$BIN_DIR/keygate-kv-sync"
wait_ready kv-sync

# Ready when its admin listener answers: the public socket accepts connections (into its
# backlog) whether or not a gateway runs.
start_service gateway "$GATEWAY_ADMIN_LISTEN" \
    LISTEN_FDS=1 \
    KEYGATE_ADDR="http://$URL_HOST" \
    KEYGATE_GATEWAY_KEY_FILE="$DATA_ABS/gateway.key" \
    KEYGATE_EDGE_KEY_FILE="$DATA_ABS/edge.key" \
    KEYGATE_KV_PATH="$DATA_ABS/kv.db" \
    KEYGATE_GATEWAY_LISTEN="$GATEWAY_LISTEN" \
    KEYGATE_GATEWAY_ADMIN_LISTEN="$GATEWAY_ADMIN_LISTEN" \
    KEYGATE_PUBLIC_URL="${KEYGATE_PUBLIC_URL:-$GATEWAY_URL}" \
    "$GATEWAY_BIN"
wait_ready gateway
if [[ -n "${DATABASE_URL:-}" ]]; then
    DB_SHOWN="$(kg_redact_url "$DATABASE_URL") (from DATABASE_URL)"
else
    DB_SHOWN="SQLite $DATA_ABS/keygate.db"
fi
# The CLI's default address is http://127.0.0.1:7000; say so when it differs.
ADDR_HINT=
if [[ "$URL_HOST" != 127.0.0.1:7000 ]]; then
    ADDR_HINT="export KEYGATE_ADDR=http://$URL_HOST"$'\n      '
fi
CLI=$BIN_DIR_SHOWN/keygate
# How the first admin signs in: a setup code exists only until the first admin is created.
if [[ -f "$SETUP_FILE" ]]; then
    SIGN_IN="First start: create the first system admin with the one-time setup code
    (valid 24 h, saved in $SETUP_FILE, mode 0600), in the browser:
      open http://$URL_HOST/setup and paste the code from: cat $SETUP_FILE
    or with the CLI:
      ${ADDR_HINT}$CLI setup --code-file $SETUP_FILE --email you@example.com --name \"Your Name\"
      $CLI team create my-team --name \"My Team\""
else
    SIGN_IN="Sign in (the first admin exists): http://$URL_HOST/ in the browser, or
      ${ADDR_HINT}$CLI login --email you@example.com
      $CLI whoami"
fi

cat >&2 <<BANNER

==> Keygate is running (Ctrl-C stops it; a service that exits is restarted)
    admin UI        http://$URL_HOST/
    control plane   gRPC + grpc-web on http://$URL_HOST
    kv-sync         local KV $DATA_ABS/kv.db   (metrics http://$SYNC_METRICS_LISTEN/metrics)
    gateway         $GATEWAY_URL   (X-API-Key; readiness http://$GWA_HOST:$GWA_PORT/readyz, /metrics)
    data            $DATA_ABS
    database        $DB_SHOWN
    logs            $(cd "$LOG_DIR" && pwd)/
    pids            $(cd "$RUN_DIR" && pwd)/<service>.pid
    CLI             $CLI

    $SIGN_IN

    Then put an API behind the gateway and call it (README "Walkthrough"):
      $CLI route add --name echo --team my-team --path /echo --backend http://127.0.0.1:9000/ --strip-prefix
      $CLI token create --name demo --team my-team --scope echo --expires-in-days 30 --quiet
      curl -H "X-API-Key: <that token>" $GATEWAY_URL/echo/hello
      $CLI token revoke <token id>     # the same curl now answers 401

BANNER

# Supervise until Ctrl-C / TERM (the trap runs stop_services) or the restart limit.
supervise
