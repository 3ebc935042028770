#!/usr/bin/env bash
# scripts/fuzz.sh — runs the cargo-fuzz targets in fuzz/ (docs/fuzzing.md).
#
# Usage:
#   ./scripts/fuzz.sh short [SECONDS]   each target for SECONDS (default 45), one after the
#                                       other: what scripts/test.sh runs
#   ./scripts/fuzz.sh long [SECONDS]    every target at once for SECONDS (default 1800), each
#                                       with its log in target/fuzz/runs/<UTC time>/; prints
#                                       each target's last libFuzzer status line and stats
#   ./scripts/fuzz.sh build             only build the targets
#
# Environment:
#   KEYGATE_FUZZ_SANITIZER=none|address   default none (see docs/fuzzing.md for why)
#   CARGO_TARGET_DIR                      the fuzz build goes to $CARGO_TARGET_DIR/fuzz
#                                         (default target/fuzz): one target directory
#
# Installs the nightly toolchain and cargo-fuzz when missing. Fails on any crash, timeout or
# leak a target finds (its input is kept in fuzz/artifacts/<target>/), and fails closed when
# fuzz/ exists but the targets cannot be built or run.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

TARGETS=(h1_differential decide_invariants kv_decoders)
SANITIZER=${KEYGATE_FUZZ_SANITIZER:-none}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KG_ROOT/target}/fuzz"

usage() { sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

ensure_fuzz_tools() {
    [[ -d "$KG_ROOT/fuzz" ]] || kg_die "fuzz/ not found"
    kg_have rustup || kg_die "rustup not found: cannot install the nightly toolchain cargo-fuzz needs"
    if ! rustup toolchain list | grep -q '^nightly'; then
        kg_info "installing the nightly toolchain (cargo-fuzz needs it)"
        rustup toolchain install nightly --profile minimal
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        kg_info "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

build() {
    (cd "$KG_ROOT" && cargo +nightly fuzz build --sanitizer "$SANITIZER")
}

# libFuzzer options for target $1 running $2 seconds.
options() {
    local opts=(-max_total_time="$2" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [[ "$1" == h1_differential ]]; then
        opts+=(-dict="$KG_ROOT/fuzz/h1.dict")
    fi
    printf '%s\n' "${opts[@]}"
}

# Runs target $1 for $2 seconds: its corpus (fuzz/corpus/<target>, not committed) grows from
# the committed seeds (fuzz/seeds/<target>).
run_target() {
    local t=$1 secs=$2 dirs opts
    mkdir -p "$KG_ROOT/fuzz/corpus/$t" "$KG_ROOT/fuzz/artifacts/$t"
    dirs=("$KG_ROOT/fuzz/corpus/$t")
    [[ -d "$KG_ROOT/fuzz/seeds/$t" ]] && dirs+=("$KG_ROOT/fuzz/seeds/$t")
    mapfile -t opts < <(options "$t" "$secs")
    (cd "$KG_ROOT" && cargo +nightly fuzz run --sanitizer "$SANITIZER" "$t" "${dirs[@]}" -- "${opts[@]}")
}

short() {
    local secs=${1:-45} t failed=0
    ensure_fuzz_tools
    build
    for t in "${TARGETS[@]}"; do
        kg_info "fuzz: $t for ${secs} s"
        if ! run_target "$t" "$secs" 2>"$CARGO_TARGET_DIR/short-$t.log"; then
            tail -n 60 "$CARGO_TARGET_DIR/short-$t.log" >&2
            kg_warn "fuzz: $t failed (input in fuzz/artifacts/$t/)"
            failed=1
        else
            grep -E '^(Done|stat::number_of_executed_units)' "$CARGO_TARGET_DIR/short-$t.log" >&2 || true
        fi
    done
    ((failed == 0))
}

long() {
    local secs=${1:-1800} t dir pids=() failed=0
    ensure_fuzz_tools
    build
    dir="$CARGO_TARGET_DIR/runs/$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$dir"
    git -C "$KG_ROOT" rev-parse HEAD >"$dir/commit"
    for t in "${TARGETS[@]}"; do
        run_target "$t" "$secs" >"$dir/$t.log" 2>&1 &
        pids+=($!)
    done
    kg_info "fuzz: ${#TARGETS[@]} targets for ${secs} s each, logs in $dir"
    for i in "${!TARGETS[@]}"; do
        wait "${pids[i]}" || { kg_warn "fuzz: ${TARGETS[i]} failed (input in fuzz/artifacts/${TARGETS[i]}/)"; failed=1; }
    done
    for t in "${TARGETS[@]}"; do
        printf '%s: %s\n' "$t" "$(grep -E '^#[0-9]+' "$dir/$t.log" | tail -n 1)"
        grep -E '^stat::' "$dir/$t.log" | sed "s/^/$t: /"
        printf '%s: corpus files %s\n' "$t" "$(find "$KG_ROOT/fuzz/corpus/$t" -type f | wc -l)"
    done
    ((failed == 0))
}

case "${1:-}" in
short) short "${2:-}" ;;
long) long "${2:-}" ;;
build) ensure_fuzz_tools && build ;;
-h | --help | "") usage ;;
*) usage >&2 && exit 2 ;;
esac
