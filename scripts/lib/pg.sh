# shellcheck shell=bash
# scripts/lib/pg.sh — a throwaway PostgreSQL server for the test suite.
#
# Owns: starting one private PostgreSQL server on 127.0.0.1 and a free port,
# in a fresh temporary directory, and stopping it and removing that directory.
# Must not: touch any other PostgreSQL server or cluster on the machine.
#
#   source scripts/lib/pg.sh
#   pg_start_throwaway      # exports KEYGATE_TEST_PG_URL; stops itself on exit
#   ...
#   pg_stop_throwaway       # optional: also runs from the EXIT/INT/TERM trap
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` OS user (created with `useradd --system` if missing); otherwise
# as the current user. Tuned for tests, not durability (fsync off etc.).
# Its log stays in the directory ($KG_PG_DIR/postgres.log) while it runs.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KG_PG_BINDIR=${KG_PG_BINDIR:-/usr/lib/postgresql/15/bin}
KG_PG_DIR=          # the temporary directory (data/, socket, log)
KG_PG_PORT=
_KG_PG_RUNAS=()     # command prefix that runs a command as the server's user
_KG_PG_TRAP_SET=

# Run a PostgreSQL tool as the server's user, from a directory it can read
# (as root the caller's cwd may be unreadable for `postgres`).
_kg_pg_run() {
    (cd "$KG_PG_DIR" && "${_KG_PG_RUNAS[@]}" "$@")
}

# A TCP port on 127.0.0.1 that is free right now, chosen by the kernel.
kg_free_port() {
    local py
    for py in python3 /usr/bin/python3 python; do
        if kg_have "$py"; then
            "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' && return 0
        fi
    done
    # Fallback without Python: a random high port that nothing answers on.
    local port i
    for i in {1..50}; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

_kg_pg_prepare_user() {
    _KG_PG_RUNAS=()
    if [[ "$(id -u)" != 0 ]]; then
        return 0
    fi
    if ! id -u postgres >/dev/null 2>&1; then
        kg_info "creating system user postgres"
        useradd --system --user-group --no-create-home \
            --home-dir /var/lib/postgresql --shell /bin/sh postgres
    fi
    if kg_have runuser; then
        _KG_PG_RUNAS=(runuser -u postgres --)
    elif kg_have setpriv; then
        _KG_PG_RUNAS=(setpriv "--reuid=$(id -u postgres)" "--regid=$(id -g postgres)" --init-groups --)
    else
        kg_die "need runuser or setpriv to run PostgreSQL as user postgres"
    fi
}

_kg_pg_log_tail() {
    if [[ -n "$KG_PG_DIR" && -f "$KG_PG_DIR/postgres.log" ]]; then
        kg_info "last lines of $KG_PG_DIR/postgres.log:"
        tail -n 40 "$KG_PG_DIR/postgres.log" | sed 's/^/    | /' >&2
    fi
}

# pg_start_throwaway — start the server, export KEYGATE_TEST_PG_URL.
pg_start_throwaway() {
    local initdb=$KG_PG_BINDIR/initdb pg_ctl=$KG_PG_BINDIR/pg_ctl
    [[ -x "$initdb" && -x "$pg_ctl" ]] ||
        kg_die "PostgreSQL server binaries not found in $KG_PG_BINDIR (apt-get install postgresql-15)"
    [[ -z "$KG_PG_DIR" ]] || kg_die "a throwaway PostgreSQL is already running ($KG_PG_DIR)"

    _kg_pg_prepare_user
    # Under /tmp, not $TMPDIR: the postgres user must be able to reach it.
    KG_PG_DIR=$(mktemp -d /tmp/keygate-pg.XXXXXX)
    # Register the stop before anything can fail half-way.
    if [[ -z "$_KG_PG_TRAP_SET" ]]; then
        kg_on_exit pg_stop_throwaway
        _KG_PG_TRAP_SET=1
    fi
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$KG_PG_DIR"
    fi
    chmod 700 "$KG_PG_DIR"

    local locale=C
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
        locale=C.UTF-8
    fi
    if ! _kg_pg_run "$initdb" -D "$KG_PG_DIR/data" -A trust -U postgres \
        --no-sync -E UTF8 --locale="$locale" >"$KG_PG_DIR/initdb.log" 2>&1; then
        kg_warn "initdb failed:"
        sed 's/^/    | /' "$KG_PG_DIR/initdb.log" >&2
        return 1
    fi

    # The port is free when asked but could be taken before the server binds
    # it; try a few ports before giving up.
    local attempt
    for attempt in 1 2 3; do
        KG_PG_PORT=$(kg_free_port) || kg_die "could not find a free TCP port"
        if _kg_pg_run "$pg_ctl" -D "$KG_PG_DIR/data" -l "$KG_PG_DIR/postgres.log" \
            -w -t 60 -s \
            -o "-h 127.0.0.1 -p $KG_PG_PORT -k $KG_PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start >/dev/null; then
            KEYGATE_TEST_PG_URL="postgres://postgres@127.0.0.1:$KG_PG_PORT/postgres"
            export KEYGATE_TEST_PG_URL
            kg_info "throwaway PostgreSQL: $KEYGATE_TEST_PG_URL (dir $KG_PG_DIR)"
            return 0
        fi
        if grep -q 'could not bind\|Address already in use' "$KG_PG_DIR/postgres.log" 2>/dev/null; then
            kg_info "port $KG_PG_PORT was taken (attempt $attempt); trying another"
            continue
        fi
        break
    done
    kg_warn "PostgreSQL did not start"
    _kg_pg_log_tail
    return 1
}

# pg_stop_throwaway — stop the server started above (only that one) and remove
# its directory. Safe to call more than once, or when nothing was started.
pg_stop_throwaway() {
    [[ -n "$KG_PG_DIR" ]] || return 0
    local dir=$KG_PG_DIR pid=
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        if ! _kg_pg_run "$KG_PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 -s stop >/dev/null 2>&1; then
            # Still running: kill the postmaster this script started, by pid.
            if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
                kg_warn "pg_ctl stop failed; killing postmaster $pid"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf "$dir"
    KG_PG_DIR=
    KG_PG_PORT=
    kg_info "throwaway PostgreSQL stopped and removed"
}
