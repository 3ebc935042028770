#!/usr/bin/env bash
# scripts/test-run-supervisor.sh — script-level test of the run command's supervisor
# (issue 15): starts ./scripts/run.sh (KEYGATE_BUILD_PROFILE=dev, its own data dir, free
# 127.0.0.1 ports), sets up a team, a route to a real local upstream (nginx) and a token
# with the CLI, runs a request loop against the gateway (one request every 50 ms, every
# status recorded), then `kill -9`s each service in turn by the PID the supervisor holds
# ($DATA/run/<service>.pid) and checks that each comes back (new PID, ready again) while
# the others keep their PIDs.
#
# What is asserted, and what is only reported:
#   - control-plane and kv-sync kills: ZERO failed requests in the loop across them (from
#     just before the kill until the service is ready again and, for kv-sync, a token
#     created during its outage works);
#   - a token created while kv-sync is down is refused (401) by the gateway during the
#     outage (checked only while the supervisor still shows kv-sync down; if kv-sync came
#     back first it is killed again, with the supervisor's longer backoff) and accepted
#     (200) after kv-sync returns;
#   - the gateway's own kill: ZERO failed requests too. run.sh holds the gateway's socket
#     and hands it to each gateway process (LISTEN_FDS), so requests sent while the gateway
#     restarts wait in the socket's backlog and are answered by the new process (the loop's
#     curl waits up to 5 s). The kill is sent between two loop requests: a request inside a
#     process at the instant it is killed is lost by any server, and is not what is tested.
#     Also required: it is back (new PID, /readyz 200) within GATEWAY_BACK_SECS;
#   - the restart limit: a second run of run.sh whose kv-sync is killed each time it comes
#     back must stop the whole stack on its own, exit non-zero and say why;
#   - the supervisor's restart lines are in each service's log;
#   - at the end, TERM to the run.sh process group stops it, and no process this test
#     started is left (every service PID ever seen, the run.sh group, nginx, the loop).
#
# Bounded: the binaries are built first (at most BUILD_SECS), then everything else has a
# hard deadline of DEADLINE_SECS; every wait polls with a deadline. Exit status non-zero
# on any failure.
#
# Usage: ./scripts/test-run-supervisor.sh
#   KEYGATE_RUN_TEST_KEEP=1   keep the temp directory (logs) even when the test passes
# Functions below are called indirectly, through poll: tell shellcheck once.
# shellcheck disable=SC2317
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

cd "$KG_ROOT"

BUILD_SECS=900
DEADLINE_SECS=480
READY_SECS=90          # run.sh up (build already done) and the banner printed
BACK_SECS=30           # a killed control plane or kv-sync is back and ready
GATEWAY_BACK_SECS=15   # a killed gateway answers /readyz 200 again
SYNC_ARRIVE_SECS=30    # a token created during the kv-sync outage is accepted after it
LOOP_INTERVAL=0.05

FAILURES=()
fail() {
    FAILURES+=("$*")
    printf 'FAIL: %s\n' "$*" >&2
}
pass() { printf 'ok:   %s\n' "$*" >&2; }
now_ms() { printf '%s\n' $(($(kg_now_us) / 1000)); }

# ------------------------------------------------------------- what we started

WORK=$(mktemp -d /tmp/keygate-run-test.XXXXXX)
DATA=$WORK/data
CLI_DIR=$WORK/cli
mkdir -p "$CLI_DIR"
RUN_PID=      # run.sh, leader of its own process group (setsid)
NGINX_PID=
LOOP_PID=
SEEN_PIDS=()  # every service PID read from the pid files

kill_wait() { # PID SIGNAL SECS — signal PID, wait for it to be gone (reaped if our child)
    local pid=$1 sig=$2 secs=$3 deadline
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null
}

# group_alive PGID — some process is in that process group.
group_alive() { ps -eo pgid= | awk -v g="$1" '$1 == g { found = 1 } END { exit !found }'; }

# stop_run_group — TERM to the run.sh process group (run.sh stops its services), wait, KILL
# what is left of the group; returns 1 if anything of it survived.
stop_run_group() {
    local deadline
    [[ -n "$RUN_PID" ]] || return 0
    if group_alive "$RUN_PID"; then
        kill -TERM -- "-$RUN_PID" 2>/dev/null || true
        deadline=$((SECONDS + 30))
        while group_alive "$RUN_PID" && ((SECONDS < deadline)); do sleep 0.2; done
        if group_alive "$RUN_PID"; then
            kg_warn "run.sh group $RUN_PID still alive 30 s after TERM; KILL"
            kill -KILL -- "-$RUN_PID" 2>/dev/null || true
            sleep 0.5
            return 1
        fi
    fi
    wait "$RUN_PID" 2>/dev/null || true
    return 0
}

# shellcheck disable=SC2317 # called from the EXIT trap
TEST_OK=0 # set when every check passed: only then is the temp directory removed
cleanup() {
    if [[ -n "$LOOP_PID" ]]; then
        touch "$WORK/loop.stop"
        kill_wait "$LOOP_PID" TERM 5 || kill_wait "$LOOP_PID" KILL 2 || true
    fi
    stop_run_group || true
    if [[ -n "$NGINX_PID" ]]; then
        kill_wait "$NGINX_PID" TERM 5 || kill_wait "$NGINX_PID" KILL 2 || true
    fi
    if ((TEST_OK == 0)) || [[ "${KEYGATE_RUN_TEST_KEEP:-0}" == 1 ]]; then
        kg_info "kept $WORK (run.sh output: $WORK/run.out, service logs: $DATA/logs/)"
    else
        rm -rf "$WORK"
    fi
}
kg_on_exit cleanup

START_S=$SECONDS
deadline_left() { echo $((DEADLINE_SECS - (SECONDS - START_S))); }
check_deadline() {
    if (($(deadline_left) <= 0)); then
        fail "overall deadline of ${DEADLINE_SECS}s passed"
        summary_and_exit
    fi
}

# poll SECS DESCRIPTION CMD... — run CMD every 0.1 s until it succeeds; 1 after SECS (or
# at the overall deadline); 2 at once if CMD returns 2 (it will never succeed).
poll() {
    local secs=$1 what=$2 deadline rc
    shift 2
    deadline=$((SECONDS + secs))
    while :; do
        rc=0
        "$@" || rc=$?
        ((rc != 0)) || return 0
        ((rc != 2)) || return 2
        if ((SECONDS >= deadline)); then
            kg_warn "timed out after ${secs}s: $what"
            return 1
        fi
        check_deadline
        sleep 0.1
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

show_logs() {
    local f
    kg_info "run.sh output (last 60 lines):"
    tail -n 60 "$WORK/run.out" 2>/dev/null | sed 's/^/    | /' >&2 || true
    for f in "$DATA"/logs/*.log; do
        [[ -f "$f" ]] || continue
        kg_info "$f (last 15 lines):"
        tail -n 15 "$f" | sed 's/^/    | /' >&2
    done
}

REPORT=()
report() {
    REPORT+=("$*")
    kg_info "$*"
}

summary_and_exit() {
    local line
    printf '\n==> run command supervisor test: summary\n' >&2
    for line in "${REPORT[@]}"; do printf '    %s\n' "$line" >&2; done
    if ((${#FAILURES[@]} > 0)); then
        show_logs
        printf '==> FAILED (%d):\n' "${#FAILURES[@]}" >&2
        for line in "${FAILURES[@]}"; do printf '    - %s\n' "$line" >&2; done
        exit 1
    fi
    printf '==> OK: every service came back after kill -9; no failed request across the kills (%ss after the build)\n' \
        $((SECONDS - START_S)) >&2
    TEST_OK=1
    exit 0
}

# ---------------------------------------------------------------------- build

kg_log "building the debug binaries (at most ${BUILD_SECS}s; run.sh's own build is then a no-op)"
timeout --kill-after=20 "$BUILD_SECS" \
    cargo build --locked -p keygate-control-plane -p keygate-cli -p keygate-kv-sync -p keygate-gateway ||
    kg_die "cargo build failed or took longer than ${BUILD_SECS}s"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked |
    grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
KG_BIN=${TARGET_DIR:-$KG_ROOT/target}/debug/keygate
[[ -x "$KG_BIN" ]] || kg_die "no CLI at $KG_BIN"
KG=kg_cli
kg_cli() { timeout --kill-after=5 30 "$KG_BIN" "$@"; } # every CLI call bounded
START_S=$SECONDS # the deadline covers everything after the build

# ------------------------------------------------------------------- upstream

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x "$NGINX" ]] || kg_die "nginx not found (apt-get install nginx-light)"
UP_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
chmod 755 "$WORK" "$WORK/nginx" "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
# One process (no master): its PID is the one this test stops.
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$UP_PORT;
        default_type text/plain;
        location / { return 200 'upstream ok \$uri\n'; }
    }
}
EOF
"$NGINX" -p "$WORK/nginx/" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
    >"$WORK/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
up_ok() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$UP_PORT/")" == 200 ]]; }
poll 15 "nginx upstream on 127.0.0.1:$UP_PORT" up_ok || {
    cat "$WORK/nginx/error.log" >&2 || true
    kg_die "the nginx upstream did not start"
}
kg_info "upstream: nginx (pid $NGINX_PID) on 127.0.0.1:$UP_PORT"

# ------------------------------------------------------------------- run.sh

export KEYGATE_CONFIG_DIR=$CLI_DIR
choose_ports() {
    CP_PORT=$(free_port)
    GW_PORT=$(free_port)
    GWA_PORT=$(free_port)
    SYNC_PORT=$(free_port)
    GW=http://127.0.0.1:$GW_PORT
    export KEYGATE_ADDR=http://127.0.0.1:$CP_PORT
}

start_run() { # OUTFILE
    # setsid: run.sh leads its own process group, which the test stops at the end.
    env -u DATABASE_URL -u KEYGATE_PUBLIC_URL -u KEYGATE_KEY -u KEYGATE_KEY_FILE \
        KEYGATE_BUILD_PROFILE=dev KEYGATE_BUILD_UI=0 \
        KEYGATE_DATA_DIR="$DATA" \
        KEYGATE_LISTEN="127.0.0.1:$CP_PORT" \
        KEYGATE_GATEWAY_LISTEN="127.0.0.1:$GW_PORT" \
        KEYGATE_GATEWAY_ADMIN_LISTEN="127.0.0.1:$GWA_PORT" \
        KEYGATE_SYNC_METRICS_LISTEN="127.0.0.1:$SYNC_PORT" \
        setsid "$KG_ROOT/scripts/run.sh" >"$1" 2>&1 </dev/null &
    RUN_PID=$!
    local pgid
    pgid=$(ps -o pgid= -p "$RUN_PID" | tr -d ' ')
    [[ "$pgid" == "$RUN_PID" ]] || kg_die "run.sh (pid $RUN_PID) is not its own process group leader (pgid $pgid)"
}

RUN_OUT=
banner_up() {
    kill -0 "$RUN_PID" 2>/dev/null || {
        kg_warn "run.sh exited before its banner"
        return 2
    }
    grep -q 'Keygate is running' "$RUN_OUT"
}

# start_run_ready OUTFILE — start run.sh on free ports and wait for its banner. A port taken
# by someone else between choosing and binding (run.sh refuses a busy port) is retried
# with new ports, at most 3 times.
start_run_ready() {
    local try rc
    RUN_OUT=$1
    for try in 1 2 3; do
        choose_ports
        start_run "$RUN_OUT"
        rc=0
        poll "$READY_SECS" "run.sh banner" banner_up || rc=$?
        ((rc != 0)) || return 0
        stop_run_group || true
        if ((rc == 2)) && grep -q 'is already in use' "$RUN_OUT"; then
            kg_info "a chosen port was taken meanwhile (try $try); new ports"
            continue
        fi
        break
    done
    fail "run.sh did not print its banner within ${READY_SECS}s ($RUN_OUT)"
    tail -n 20 "$RUN_OUT" | sed 's/^/    | /' >&2
    summary_and_exit
}

kg_log "starting ./scripts/run.sh (KEYGATE_BUILD_PROFILE=dev) with data in $DATA"
start_run_ready "$WORK/run.out"
pass "run.sh is up (banner printed, pid $RUN_PID)"

pid_of() { cat "$DATA/run/$1.pid" 2>/dev/null || true; }
remember() { SEEN_PIDS+=("$1"); }
for s in control-plane kv-sync gateway; do
    p=$(pid_of "$s")
    if [[ -z "$p" ]] || ! kill -0 "$p" 2>/dev/null; then
        fail "no live PID in $DATA/run/$s.pid"
        summary_and_exit
    fi
    remember "$p"
done

# ------------------------------------------------------- admin, team, route, token

kg_log "first admin, team, route and token with the CLI ($KG_BIN)"
PASSWORD='supervisor-test-password-1'
printf '%s\n' "$PASSWORD" | "$KG" setup --code-file "$DATA/setup-code" --email ops@example.com \
    --name Ops --password-stdin >/dev/null
"$KG" team create sup --name "Supervisor test" >/dev/null
"$KG" route add --name files --team sup --path /files --backend "http://127.0.0.1:$UP_PORT/" \
    --strip-prefix >/dev/null
TOKEN=$("$KG" token create --name loop --team sup --scope files --expires-in-days 1 --quiet)
[[ -n "$TOKEN" ]] || kg_die "token create printed nothing"

status_of() { # TOKEN -> HTTP status through the gateway ("000": no answer)
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-API-Key: $1" "$GW/files/hello" || true
}
token_is() { [[ "$(status_of "$1")" == "$2" ]]; }
poll 30 "the loop token accepted by the gateway" token_is "$TOKEN" 200 || {
    fail "the token never reached the gateway (last status $(status_of "$TOKEN"))"
    summary_and_exit
}
pass "token accepted through the gateway"

# --------------------------------------------------------------- request loop

LOOP_LOG=$WORK/loop.log
: >"$LOOP_LOG"
(
    trap 'exit 0' TERM
    while [[ ! -e "$WORK/loop.stop" ]]; do
        # Held (between two requests) while the test sends a kill -9 to the gateway.
        if [[ -e "$WORK/loop.hold" ]]; then
            touch "$WORK/loop.held"
            sleep 0.01
            continue
        fi
        t=$(now_ms)
        code=$(status_of "$TOKEN")
        printf '%s %s\n' "$t" "$code" >>"$LOOP_LOG"
        sleep "$LOOP_INTERVAL"
    done
) &
LOOP_PID=$!
kg_info "request loop running (pid $LOOP_PID, every ${LOOP_INTERVAL}s, log $LOOP_LOG)"

# window_counts FROM_MS TO_MS -> "TOTAL FAILED" for loop requests started in [FROM, TO)
window_counts() {
    awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { n++; if ($2 != "200") f++ } END { printf "%d %d\n", n, f }' "$LOOP_LOG"
}
# window_statuses FROM_MS TO_MS -> "200x12 000x3" for that window
window_statuses() {
    awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { c[$2]++ } END { for (k in c) printf "%sx%d ", k, c[k] }' "$LOOP_LOG"
}
loop_has_after() { # MS N — at least N loop requests started after MS
    [[ $(awk -v a="$1" '$1 >= a { n++ } END { print n + 0 }' "$LOOP_LOG") -ge "$2" ]]
}

T0=$(now_ms)
poll 10 "baseline requests" loop_has_after "$T0" 20 || fail "the request loop does not run"

new_pid() { # SERVICE OLD_PID — the pid file names a live PID other than OLD_PID
    local p
    p=$(pid_of "$1")
    [[ -n "$p" && "$p" != "$2" ]] && kill -0 "$p" 2>/dev/null
}
tcp_ok() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
gw_ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$GWA_PORT/readyz")" == 200 ]]; }

# others_unchanged KILLED — the other two services still run with the PIDs they had.
declare -A BEFORE
snapshot_pids() { local s; for s in control-plane kv-sync gateway; do BEFORE[$s]=$(pid_of "$s"); done; }
others_unchanged() {
    local s
    for s in control-plane kv-sync gateway; do
        [[ "$s" == "$1" ]] && continue
        if [[ "$(pid_of "$s")" != "${BEFORE[$s]}" ]] || ! kill -0 "${BEFORE[$s]}" 2>/dev/null; then
            fail "$s changed or died while $1 was killed (pid ${BEFORE[$s]} -> $(pid_of "$s"))"
        fi
    done
}

# -------------------------------------------------------- kill -9 control-plane

kg_log "kill -9 control-plane"
snapshot_pids
OLD=$(pid_of control-plane)
CP_FROM=$(now_ms)
kill -KILL "$OLD"
if poll "$BACK_SECS" "control-plane restarted" new_pid control-plane "$OLD" &&
    poll "$BACK_SECS" "control-plane accepting on $CP_PORT" tcp_ok "$CP_PORT"; then
    CP_BACK=$(now_ms)
    NEW=$(pid_of control-plane)
    remember "$NEW"
    # Serving again, as the same data: the admin's session still works.
    if "$KG" token list --team sup >/dev/null 2>&1 ||
        poll 10 "CLI against the restarted control plane" "$KG" token list --team sup; then
        pass "control-plane back: pid $OLD -> $NEW in $((CP_BACK - CP_FROM)) ms, the CLI works"
    else
        fail "control-plane restarted but the CLI fails against it"
    fi
    report "control-plane: kill -9 pid $OLD -> new pid $NEW ready after $((CP_BACK - CP_FROM)) ms"
else
    fail "control-plane did not come back within ${BACK_SECS}s"
    summary_and_exit
fi
others_unchanged control-plane
sleep 1 # requests after it is back belong to this window too
CP_TO=$(now_ms)

# --------------------------------------------- kill -9 kv-sync, token created meanwhile

kg_log "kill -9 kv-sync, and create a token while it is down"
snapshot_pids
SYNC_FROM=$(now_ms)
OUTAGE_TOKEN=
for try in 1 2 3; do
    OLD=$(pid_of kv-sync)
    remember "$OLD"
    kill -KILL "$OLD"
    # The supervisor noticed the exit once the pid file is gone; until it writes a new one,
    # nothing writes the KV.
    sync_down() { [[ ! -e "$DATA/run/kv-sync.pid" ]]; }
    poll 5 "supervisor notices the kv-sync exit" sync_down || {
        fail "the supervisor did not notice kv-sync's exit within 5 s"
        break
    }
    T=$("$KG" token create --name "outage-$try" --team sup --scope files --expires-in-days 1 --quiet)
    CODE=$(status_of "$T")
    if sync_down && ! kill -0 "$OLD" 2>/dev/null; then
        OUTAGE_TOKEN=$T
        report "kv-sync: token created during the outage (try $try): gateway answered $CODE while kv-sync was down"
        if [[ "$CODE" == 401 ]]; then
            pass "a token created while kv-sync is down is refused (401) by the gateway"
        else
            fail "a token created while kv-sync is down answered $CODE (expected 401)"
        fi
        break
    fi
    kg_info "kv-sync came back before the check (try $try); killing it again (the supervisor's backoff doubles)"
    poll "$BACK_SECS" "kv-sync back" new_pid kv-sync "$OLD" || break
done
[[ -n "$OUTAGE_TOKEN" ]] || fail "could not create a token while kv-sync was down (3 tries)"
if poll "$BACK_SECS" "kv-sync restarted" new_pid kv-sync "$OLD" &&
    poll "$BACK_SECS" "kv-sync metrics on $SYNC_PORT" tcp_ok "$SYNC_PORT"; then
    SYNC_BACK=$(now_ms)
    NEW=$(pid_of kv-sync)
    remember "$NEW"
    report "kv-sync: kill -9 pid $OLD -> new pid $NEW ready $((SYNC_BACK - SYNC_FROM)) ms after the first kill"
    if [[ -n "$OUTAGE_TOKEN" ]]; then
        if poll "$SYNC_ARRIVE_SECS" "outage token accepted" token_is "$OUTAGE_TOKEN" 200; then
            T_OK=$(now_ms)
            pass "the outage token is accepted (200) $((T_OK - SYNC_BACK)) ms after kv-sync is back"
            report "kv-sync: outage token accepted $((T_OK - SYNC_BACK)) ms after kv-sync was ready again"
        else
            fail "the token created during the kv-sync outage was not accepted within ${SYNC_ARRIVE_SECS}s of its return (last $(status_of "$OUTAGE_TOKEN"))"
        fi
    fi
else
    fail "kv-sync did not come back within ${BACK_SECS}s"
    summary_and_exit
fi
others_unchanged kv-sync
sleep 1
SYNC_TO=$(now_ms)

# ---------------------------------------------------------------- kill -9 gateway

kg_log "kill -9 gateway (its socket is held by run.sh: no request may fail)"
snapshot_pids
OLD=$(pid_of gateway)
rm -f "$WORK/loop.held"
touch "$WORK/loop.hold"
poll 5 "the request loop between two requests" test -e "$WORK/loop.held" || fail "the request loop did not pause"
GW_FROM=$(now_ms)
kill -KILL "$OLD"
rm -f "$WORK/loop.hold"
if poll "$GATEWAY_BACK_SECS" "gateway restarted" new_pid gateway "$OLD" &&
    poll "$GATEWAY_BACK_SECS" "gateway /readyz 200" gw_ready; then
    GW_BACK=$(now_ms)
    NEW=$(pid_of gateway)
    remember "$NEW"
    ((GW_BACK - GW_FROM <= GATEWAY_BACK_SECS * 1000)) ||
        fail "gateway took $((GW_BACK - GW_FROM)) ms to be ready (bound ${GATEWAY_BACK_SECS}s)"
    report "gateway: kill -9 pid $OLD -> new pid $NEW, /readyz 200 after $((GW_BACK - GW_FROM)) ms"
else
    fail "gateway did not come back (new PID and /readyz 200) within ${GATEWAY_BACK_SECS}s"
    summary_and_exit
fi
others_unchanged gateway
poll 10 "loop requests after the gateway is back" loop_has_after "$GW_BACK" 30 || fail "the loop stalled after the gateway restart"
GW_AFTER=$(now_ms)

# The loop writes a request's line when it is answered, stamped with its start: count the
# windows once it has stopped, so a request started inside a window is always counted.
touch "$WORK/loop.stop"
kill_wait "$LOOP_PID" TERM 5 || fail "the request loop (pid $LOOP_PID) did not stop"
LOOP_PID=
kg_log "request loop: every status, by window (start of each request)"
read -r n f < <(window_counts "$T0" "$CP_FROM")
report "before the kills: $n requests, $f failed ($(window_statuses "$T0" "$CP_FROM"))"
((f == 0)) || fail "$f requests failed before any kill"
read -r n f < <(window_counts "$CP_FROM" "$CP_TO")
report "control-plane kill until 1 s after it is ready: $n requests, $f failed ($(window_statuses "$CP_FROM" "$CP_TO"))"
((n > 0)) || fail "no loop requests during the control-plane window"
((f == 0)) || fail "$f requests failed across the control-plane kill"
read -r n f < <(window_counts "$SYNC_FROM" "$SYNC_TO")
report "kv-sync kill until 1 s after it is back: $n requests, $f failed ($(window_statuses "$SYNC_FROM" "$SYNC_TO"))"
((n > 0)) || fail "no loop requests during the kv-sync window"
((f == 0)) || fail "$f requests failed across the kv-sync kill"
read -r n gf < <(window_counts "$GW_FROM" "$GW_BACK")
report "gateway kill until /readyz 200: $n requests, $gf failed ($(window_statuses "$GW_FROM" "$GW_BACK"))"
((n > 0)) || fail "no loop requests during the gateway's restart"
((gf == 0)) || fail "$gf requests failed across the gateway's own kill"
read -r n f < <(window_counts "$GW_BACK" "$GW_AFTER")
report "after the gateway is ready again: $n requests, $f failed ($(window_statuses "$GW_BACK" "$GW_AFTER"))"
((f == 0)) || fail "$f requests failed after the gateway was ready again"
read -r n f < <(window_counts 0 99999999999999)
report "request loop total: $n requests, $f failed"
((f == 0)) || fail "$f requests failed in the loop"

# ------------------------------------------------------------ restart lines logged

for s in control-plane kv-sync gateway; do
    if grep -q 'supervisor: .*killed by SIGKILL.*restart attempt' "$DATA/logs/$s.log" &&
        grep -q 'supervisor: .*restarted (pid' "$DATA/logs/$s.log"; then
        pass "$s.log records the kill and the restart"
    else
        fail "$DATA/logs/$s.log does not record the supervisor's restart"
    fi
done
grep -q 'kv-sync: killed by SIGKILL (status 137) after .* up; restart attempt 1 in 1s' "$WORK/run.out" ||
    fail "run.sh's output does not report kv-sync's restart (exit status, attempt, delay)"

# ------------------------------------------------------ TERM stops exactly what it started

kg_log "TERM to the run.sh process group"
if stop_run_group; then
    pass "run.sh group stopped by TERM"
else
    fail "the run.sh group needed KILL"
fi
grep -q 'stopping services' "$WORK/run.out" || fail "run.sh did not report stopping its services on TERM"
for p in "${SEEN_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
        fail "service pid $p still alive after run.sh stopped"
        kill -KILL "$p" 2>/dev/null || true
    fi
done
ls "$DATA"/run/*.pid >/dev/null 2>&1 && fail "pid files left in $DATA/run after a clean stop"
RUN_PID=

# ---------------------------------------------- restart limit: the stack gives up

kg_log "restart limit: kill kv-sync each time it comes back until run.sh gives up"
SEEN_PIDS=()
start_run_ready "$WORK/run2.out"
for s in control-plane kv-sync gateway; do remember "$(pid_of "$s")"; done
KILLS=0
LAST=
LIMIT_FROM=$SECONDS
while kill -0 "$RUN_PID" 2>/dev/null && ((SECONDS - LIMIT_FROM < 120)); do
    check_deadline
    p=$(pid_of kv-sync)
    if [[ -n "$p" && "$p" != "$LAST" ]] && kill -0 "$p" 2>/dev/null; then
        remember "$p"
        kill -KILL "$p" 2>/dev/null && KILLS=$((KILLS + 1))
        LAST=$p
    fi
    sleep 0.1
done
rc=0
if kill -0 "$RUN_PID" 2>/dev/null; then
    fail "run.sh did not give up after $KILLS kills of kv-sync within 120 s"
else
    wait "$RUN_PID" || rc=$?
    report "restart limit: run.sh stopped itself after $KILLS kills of kv-sync in $((SECONDS - LIMIT_FROM)) s (exit status $rc)"
    ((rc != 0)) || fail "run.sh exited 0 after giving up (expected non-zero)"
    if ! grep -q 'giving up' "$WORK/run2.out" ||
        ! grep -q 'stopping the whole stack: kv-sync keeps exiting; see its log' "$WORK/run2.out"; then
        fail "run.sh's output does not say why it stopped"
    fi
fi
group_gone() { ! group_alive "$RUN_PID"; }
poll 15 "the second run.sh group gone" group_gone || fail "processes of the second run.sh are left"
for p in "${SEEN_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
        fail "service pid $p still alive after run.sh gave up"
    fi
done
# Whatever happened above, nothing of this run.sh may outlive the test.
stop_run_group || fail "the second run.sh group needed KILL"
RUN_PID=

summary_and_exit
