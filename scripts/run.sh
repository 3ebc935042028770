#!/usr/bin/env bash
# scripts/run.sh — THE run command: builds Keygate and runs the whole stack on
# embedded defaults until Ctrl-C: the control plane (SQLite under ./data) with
# the admin UI on its own port, kv-sync into the local KV file, and the native
# gateway reading it.
#
# Usage: ./scripts/run.sh
#
# Environment:
#   KEYGATE_DATA_DIR   data directory (default ./data): keygate.db, kv.db, key
#                      files, the first-start setup code, logs/ (one per service)
#   KEYGATE_LISTEN     control plane gRPC + grpc-web + admin UI address (default 127.0.0.1:7000)
#   KEYGATE_GATEWAY_LISTEN        gateway address (default 127.0.0.1:8080)
#   KEYGATE_GATEWAY_ADMIN_LISTEN  gateway /readyz, /metrics (default 127.0.0.1:9465)
#   KEYGATE_SYNC_METRICS_LISTEN   kv-sync /metrics (default 127.0.0.1:9464)
#
# Services run in the background, each with its PID recorded; on exit, Ctrl-C
# or when any of them dies, exactly those PIDs are stopped.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/ensure.sh
source "$KG_ROOT/scripts/lib/ensure.sh"

case "${1:-}" in
-h | --help)
    sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
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
STARTUP_DEADLINE_SECS=60
STOP_GRACE_SECS=10

# ------------------------------------------------------------ services
#
# SERVICE_NAMES[i] / SERVICE_PIDS[i] / SERVICE_LOGS[i] describe what this
# script started; stop_services signals exactly those PIDs.

SERVICE_NAMES=()
SERVICE_PIDS=()
SERVICE_LOGS=()

# start_service NAME CMD... — start CMD in the background, log to LOG_DIR/NAME.log.
start_service() {
    local name=$1 log
    shift
    log=$LOG_DIR/$name.log
    printf '\n---- %s: starting %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    SERVICE_NAMES+=("$name")
    SERVICE_PIDS+=("$!")
    SERVICE_LOGS+=("$log")
    kg_info "$name started (pid $!, log $log)"
}

service_alive() { kill -0 "$1" 2>/dev/null; }

log_tail() { # LOGFILE
    kg_info "last lines of $1:"
    tail -n 40 "$1" | sed 's/^/    | /' >&2
}

# shellcheck disable=SC2317 # called from the EXIT/INT/TERM trap
stop_services() {
    local i pid deadline
    ((${#SERVICE_PIDS[@]} > 0)) || return 0
    kg_log "stopping services"
    for i in "${!SERVICE_PIDS[@]}"; do
        pid=${SERVICE_PIDS[i]}
        if service_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    deadline=$((SECONDS + STOP_GRACE_SECS))
    for i in "${!SERVICE_PIDS[@]}"; do
        pid=${SERVICE_PIDS[i]}
        while service_alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if service_alive "$pid"; then
            kg_warn "${SERVICE_NAMES[i]} (pid $pid) did not stop in ${STOP_GRACE_SECS}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
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

# ensure_port_free NAME HOST:PORT — refuse to start if something already
# listens there (it would look like our service being ready).
ensure_port_free() {
    local host port
    read -r host port < <(connect_host_port "$2")
    if tcp_open "$host" "$port"; then
        kg_die "$1: $2 is already in use (another ./scripts/run.sh?); set KEYGATE_LISTEN to another address"
    fi
}

# wait_for_tcp NAME HOST:PORT — poll until the address accepts a TCP
# connection, with a deadline; fail early if the service exits.
wait_for_tcp() {
    local name=$1 addr=$2 host port i pid log deadline
    read -r host port < <(connect_host_port "$addr")
    for i in "${!SERVICE_NAMES[@]}"; do
        if [[ "${SERVICE_NAMES[i]}" == "$name" ]]; then
            pid=${SERVICE_PIDS[i]}
            log=${SERVICE_LOGS[i]}
        fi
    done
    deadline=$((SECONDS + STARTUP_DEADLINE_SECS))
    while :; do
        if tcp_open "$host" "$port"; then
            return 0
        fi
        if ! service_alive "$pid"; then
            kg_warn "$name exited during startup"
            log_tail "$log"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            kg_warn "$name did not accept connections on $addr within ${STARTUP_DEADLINE_SECS}s"
            log_tail "$log"
            return 1
        fi
        sleep 0.1
    done
}

# ----------------------------------------------------------------- run

kg_log "checking toolchain"
ensure_system_packages build
kg_have cargo || kg_die "cargo not found: install Rust with rustup first"

# The admin UI is built first: the release control plane embeds admin-web/dist.
kg_log "building the admin UI (admin-web: npm ci when needed, vite build)"
ensure_admin_web_packages
(cd "$KG_ROOT/admin-web" && npm run --silent build)

kg_log "building (release; the gateway with its own whole-program-optimised profile)"
cargo build --release --locked -p keygate-control-plane -p keygate-cli -p keygate-kv-sync
cargo build --profile gateway --locked -p keygate-gateway

# Where cargo put the binaries (honours CARGO_TARGET_DIR and .cargo/config).
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked |
    grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
BIN_DIR=${TARGET_DIR:-$KG_ROOT/target}/release
GATEWAY_BIN=${TARGET_DIR:-$KG_ROOT/target}/gateway/keygate-gateway
BIN_DIR_SHOWN=${BIN_DIR#"$KG_ROOT"/}

# The data dir holds the database and key files, and a first start prints the
# one-time setup code to the control plane's log: keep all of it private to the user.
umask 077
mkdir -p "$KEYGATE_DATA_DIR" "$LOG_DIR"
kg_on_exit stop_services

kg_log "starting services"
# In dependency order, each with a readiness wait. The admin UI is served by the control plane.
ensure_port_free control-plane "$KEYGATE_LISTEN"
ensure_port_free kv-sync "$SYNC_METRICS_LISTEN"
ensure_port_free gateway "$GATEWAY_LISTEN"
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
KEYGATE_EMBEDDED_SERVICE_KEYS=true \
    KEYGATE_GATEWAY_PUBLIC_URL=${KEYGATE_PUBLIC_URL:-$GATEWAY_URL} \
    start_service control-plane "$BIN_DIR/keygate-control-plane"
wait_for_tcp control-plane "$KEYGATE_LISTEN"

KEYGATE_ADDR=http://$URL_HOST \
    KEYGATE_SYNC_KEY_FILE=$DATA_ABS/kv-sync.key \
    KEYGATE_KV=sqlite \
    KEYGATE_KV_PATH=$DATA_ABS/kv.db \
    KEYGATE_SYNC_METRICS_LISTEN=$SYNC_METRICS_LISTEN \
    start_service kv-sync "$BIN_DIR/keygate-kv-sync"
wait_for_tcp kv-sync "$SYNC_METRICS_LISTEN"

KEYGATE_ADDR=http://$URL_HOST \
    KEYGATE_GATEWAY_KEY_FILE=$DATA_ABS/gateway.key \
    KEYGATE_EDGE_KEY_FILE=$DATA_ABS/edge.key \
    KEYGATE_KV_PATH=$DATA_ABS/kv.db \
    KEYGATE_GATEWAY_LISTEN=$GATEWAY_LISTEN \
    KEYGATE_GATEWAY_ADMIN_LISTEN=$GATEWAY_ADMIN_LISTEN \
    KEYGATE_PUBLIC_URL=${KEYGATE_PUBLIC_URL:-$GATEWAY_URL} \
    start_service gateway "$GATEWAY_BIN"
wait_for_tcp gateway "$GATEWAY_LISTEN"
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

==> Keygate is running (Ctrl-C stops it)
    admin UI        http://$URL_HOST/
    control plane   gRPC + grpc-web on http://$URL_HOST
    kv-sync         local KV $DATA_ABS/kv.db   (metrics http://$SYNC_METRICS_LISTEN/metrics)
    gateway         $GATEWAY_URL   (X-API-Key; readiness http://$GWA_HOST:$GWA_PORT/readyz, /metrics)
    data            $DATA_ABS
    database        $DB_SHOWN
    logs            $(cd "$LOG_DIR" && pwd)/
    CLI             $CLI

    $SIGN_IN

    Then put an API behind the gateway and call it (README "Walkthrough"):
      $CLI route add --name echo --team my-team --path /echo --backend http://127.0.0.1:9000/ --strip-prefix
      $CLI token create --name demo --team my-team --scope echo --expires-in-days 30 --quiet
      curl -H "X-API-Key: <that token>" $GATEWAY_URL/echo/hello
      $CLI token revoke <token id>     # the same curl now answers 401

BANNER

# Wait until any service exits (or Ctrl-C, which runs stop_services via the trap).
rc=0
wait -n "${SERVICE_PIDS[@]}" || rc=$?
for i in "${!SERVICE_PIDS[@]}"; do
    if ! service_alive "${SERVICE_PIDS[i]}"; then
        kg_warn "${SERVICE_NAMES[i]} exited (status $rc)"
        log_tail "${SERVICE_LOGS[i]}"
    fi
done
exit $((rc == 0 ? 1 : rc))
