#!/usr/bin/env bash
# scripts/test.sh — THE test command: installs what is missing, checks
# formatting and lints, starts a throwaway PostgreSQL unless one is given, and
# runs every test in the workspace. CI runs it through .ci/run.
#
# Usage: ./scripts/test.sh [-- NEXTEST_ARGS...]
#   ./scripts/test.sh                   everything
#   ./scripts/test.sh -- tokens         only tests whose name matches "tokens"
#
# Environment:
#   KEYGATE_TEST_PG_URL=postgres://...  use this PostgreSQL server (tests create
#                                       their own databases in it)
#   DATABASE_URL=postgres...            used when KEYGATE_TEST_PG_URL is unset
#   (neither set)                       a throwaway server (scripts/lib/pg.sh)
#   KEYGATE_TEST_SKIP_LINT=1            skip cargo fmt --check and clippy
#   KEYGATE_TEST_SKIP_DOC=1             skip the doctests
#   KEYGATE_FUZZ_SECONDS=45             seconds per fuzz target (scripts/fuzz.sh)
#
# Every step runs even if an earlier check failed (except setup steps); the
# exit status is non-zero if any step failed, and a summary with durations is
# printed at the end.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/ensure.sh
source "$KG_ROOT/scripts/lib/ensure.sh"
# shellcheck source=scripts/lib/pg.sh
source "$KG_ROOT/scripts/lib/pg.sh"

usage() { sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

NEXTEST_ARGS=()
while (($# > 0)); do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        NEXTEST_ARGS+=("$@")
        break
        ;;
    *)
        # Lenient: a bare filter also goes to nextest.
        NEXTEST_ARGS+=("$1")
        shift
        ;;
    esac
done

cd "$KG_ROOT"
# Summary last, after every cleanup registered later (cleanups run in reverse).
kg_on_exit 'kg_summary || true'

# ------------------------------------------------------------------- steps

install_tools() {
    ensure_system_packages build postgres python nginx curl
    ensure_rust_components
    ensure_nextest
    ensure_chdb
    ensure_admin_web      # npm packages and chromium (admin-web/package.json exists)
    ensure_gateway_worker # no-op until gateway/worker/Cargo.toml exists
}

choose_postgres() {
    if [[ -n "${KEYGATE_TEST_PG_URL:-}" ]]; then
        kg_info "using KEYGATE_TEST_PG_URL from the environment: $(kg_redact_url "$KEYGATE_TEST_PG_URL")"
    elif [[ "${DATABASE_URL:-}" == postgres* ]]; then
        kg_info "using DATABASE_URL from the environment: $(kg_redact_url "$DATABASE_URL")"
        KEYGATE_TEST_PG_URL=$DATABASE_URL
    else
        pg_start_throwaway
    fi
    export KEYGATE_TEST_PG_URL
}

# The crates the Worker builds for wasm32 must stay pure (no IO, no OS RNG): the gateway
# core, the usage rollup, and the protobuf messages without tonic. Every run checks that they
# still do.
gateway_core_wasm() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        kg_have rustup || kg_die "rustup not found; cannot add the wasm32-unknown-unknown target"
        kg_info "adding rustup target wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
    fi
    cargo build -p keygate-gateway-core -p keygate-gateway-pipeline -p keygate-rollup --target wasm32-unknown-unknown --locked
    cargo build -p keygate-proto --no-default-features --target wasm32-unknown-unknown --locked
}

# Future components: test hooks. No-ops until the directories exist; whoever
# adds the component writes the commands here (and in ensure.sh).
# Fail closed: a component that exists but whose tests are not wired here fails the run.
# admin-web: the generated client must match proto/, unit tests, the production build
# (type check and the initial-JS budget), then the browser tests: Debian's Chromium
# driven by playwright-core against a real control plane, kv-sync and gateway (debug
# binaries, built here) that the tests start on 127.0.0.1 and stop.
admin_web_unit() {
    (cd "$KG_ROOT/admin-web" && npm run --silent check:gen && npm test --silent)
}
admin_web_build() {
    (cd "$KG_ROOT/admin-web" && npm run --silent build)
}
admin_web_browser() {
    ensure_chromium
    cargo build --locked -p keygate-control-plane -p keygate-kv-sync -p keygate-gateway
    local target
    target=$(cargo metadata --format-version 1 --no-deps --locked |
        grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4)
    (cd "$KG_ROOT/admin-web" && KEYGATE_BIN_DIR=${target:-$KG_ROOT/target}/debug npm run --silent e2e)
}
test_admin_web() {
    kg_step "admin-web: generated client, unit tests" admin_web_unit
    kg_step "admin-web: build (type check, JS budget)" admin_web_build
    kg_step "admin-web: browser tests (Chromium)" admin_web_browser
}
# gateway/worker: the Worker built for tests (with the in-workerd vector endpoint), its
# unit tests, then its tests in local workerd (gateway/tests/worker.rs: every vector file
# inside workerd, decide.json replayed over HTTP, control plane -> kv-sync -> KV REST
# stand-in -> Worker end to end). The nextest step below leaves that binary to this step.
# Fails closed: a missing tool fails the build, a test that cannot start its harness fails.
worker_build() {
    (cd "$KG_ROOT/gateway/worker" && node scripts/build.mjs --test)
}
worker_tests() {
    cargo nextest run --locked --profile ci -p keygate-gateway-worker
    cargo nextest run --locked --profile ci -p keygate-gateway --test worker
}
test_gateway_worker() {
    kg_step "gateway/worker: build (worker-build, test features)" worker_build
    kg_step "gateway/worker: tests in workerd" worker_tests
}

# fuzz/ (docs/fuzzing.md): each cargo-fuzz target for KEYGATE_FUZZ_SECONDS (default 45) from
# its corpus and seeds, built without a sanitizer (build time). Installs nightly and
# cargo-fuzz when missing; fails on any crash, and fails closed when fuzz/ exists but the
# targets cannot be built or run (scripts/fuzz.sh).
fuzz_short_runs() {
    "$KG_ROOT/scripts/fuzz.sh" short "${KEYGATE_FUZZ_SECONDS:-45}"
}

# ------------------------------------------------------------------- run

kg_step_fatal "install missing tools" install_tools

if [[ "${KEYGATE_TEST_SKIP_LINT:-0}" == 1 ]]; then
    kg_step_skip "cargo fmt --check" "KEYGATE_TEST_SKIP_LINT=1"
    kg_step_skip "cargo clippy -D warnings" "KEYGATE_TEST_SKIP_LINT=1"
else
    kg_step "cargo fmt --check" cargo fmt --all -- --check
    kg_step "cargo clippy -D warnings" \
        cargo clippy --workspace --all-targets --locked -- -D warnings
fi

kg_step "wasm32 crates build (gateway core, pipeline, rollup, proto messages)" gateway_core_wasm

kg_step_fatal "PostgreSQL for tests" choose_postgres

# Doctests before nextest, so the last test-runner summary in the log is
# nextest's (it counts every test; the doctest summary may say 0).
if [[ "${KEYGATE_TEST_SKIP_DOC:-0}" == 1 ]]; then
    kg_step_skip "cargo test --doc" "KEYGATE_TEST_SKIP_DOC=1"
else
    kg_step "cargo test --doc" cargo test --workspace --doc --locked
fi

if kg_has_admin_web; then
    test_admin_web
fi
NEXTEST_FILTER=()
if kg_has_gateway_worker; then
    test_gateway_worker
    NEXTEST_FILTER=(-E 'not (package(keygate-gateway) & binary(worker)) & not package(keygate-gateway-worker)')
fi

kg_step "cargo nextest run" \
    cargo nextest run --workspace --locked --profile ci "${NEXTEST_FILTER[@]}" "${NEXTEST_ARGS[@]}"

if [[ -d "$KG_ROOT/fuzz" ]]; then
    kg_step "fuzz: short runs (cargo-fuzz, ${KEYGATE_FUZZ_SECONDS:-45} s per target)" fuzz_short_runs
fi

# The run command as a user runs it (scripts/test-run-supervisor.sh): ./scripts/run.sh with
# debug binaries on free ports, kill -9 of each service under a request loop through the
# gateway, a token created during kv-sync's outage, the restart limit. Bounded (8 minutes
# after its build); fails if it cannot run.
kg_step "run command: supervised restarts (kill -9 each service)" \
    "$KG_ROOT/scripts/test-run-supervisor.sh"
# deploy/ (docs/deploy.md): systemd-analyze verify of the units, container files linted.
kg_step "deploy: systemd units (systemd-analyze verify), container files" \
    "$KG_ROOT/scripts/check-deploy.sh"

((KG_FAILED_STEPS == 0))
