# shellcheck shell=bash
# scripts/lib/common.sh — shared helpers for Keygate's developer scripts.
#
# Owns: progress/log lines, step timing and the end-of-run summary, and one
# EXIT/INT/TERM trap that runs registered cleanups (last registered, first run).
# Must not: install anything, start services, or change directory.
#
# Source it from bash scripts that run with `set -euo pipefail`.

if [[ -n "${_KG_COMMON_SH:-}" ]]; then
    return 0
fi
_KG_COMMON_SH=1

# Repository root: the parent of scripts/.
KG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export KG_ROOT

# ---------------------------------------------------------------- output

kg_log() { printf '==> %s\n' "$*" >&2; }
kg_info() { printf '    %s\n' "$*" >&2; }
kg_warn() { printf 'WARNING: %s\n' "$*" >&2; }
kg_die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

kg_have() { command -v "$1" >/dev/null 2>&1; }

# kg_redact_url URL — the URL with any password replaced by ***.
kg_redact_url() { printf '%s\n' "$1" | sed -E 's#^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^@/]*@#\1:***@#'; }

# Monotonic-enough wall clock in microseconds (bash 5 EPOCHREALTIME; the
# substitution drops the locale's decimal separator, whatever it is).
kg_now_us() { printf '%s\n' "${EPOCHREALTIME//[!0-9]/}"; }

# kg_fmt_us MICROSECONDS -> "12.3s" or "2m03.4s"
kg_fmt_us() {
    local us=$1 ds m s
    ds=$(((us + 50000) / 100000)) # tenths of a second, rounded
    if ((ds >= 600)); then
        m=$((ds / 600))
        s=$((ds % 600))
        printf '%dm%02d.%ds' "$m" $((s / 10)) $((s % 10))
    else
        printf '%d.%ds' $((ds / 10)) $((ds % 10))
    fi
}

# --------------------------------------------------------------- cleanup

_KG_CLEANUPS=()
_KG_TRAPS_SET=

_kg_on_exit_trap() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#_KG_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_KG_CLEANUPS[i]}" || true
    done
    _KG_CLEANUPS=()
    exit "$rc"
}

# A signal becomes a normal exit with the conventional status, which runs the
# EXIT trap (and so the cleanups) exactly once.
_kg_on_signal() { exit "$1"; }

# kg_on_exit 'shell command' — run it when the script exits, is interrupted
# (Ctrl-C) or terminated. Cleanups run in reverse order of registration.
kg_on_exit() {
    _KG_CLEANUPS+=("$1")
    if [[ -z "$_KG_TRAPS_SET" ]]; then
        trap _kg_on_exit_trap EXIT
        trap '_kg_on_signal 130' INT
        trap '_kg_on_signal 143' TERM
        _KG_TRAPS_SET=1
    fi
}

# ----------------------------------------------------------------- steps
#
# kg_step NAME CMD...        run CMD in a subshell with `set -e`; a failure is
#                            recorded and the script goes on with the next step.
# kg_step_fatal NAME CMD...  run CMD in this shell (it may set variables); a
#                            failure ends the script (it is still summarised).
# kg_step_skip NAME WHY      record a step that was not run.
# kg_summary                 print every step with its status and duration;
#                            returns 1 if any step failed.

_KG_STEP_NAMES=()
_KG_STEP_STATUS=()
_KG_STEP_US=()
_KG_CURRENT_STEP=
_KG_CURRENT_START=
KG_START_US=$(kg_now_us)
KG_FAILED_STEPS=0

_kg_step_record() { # name status us
    _KG_STEP_NAMES+=("$1")
    _KG_STEP_STATUS+=("$2")
    _KG_STEP_US+=("$3")
    if [[ "$2" == FAILED ]]; then
        KG_FAILED_STEPS=$((KG_FAILED_STEPS + 1))
    fi
}

kg_step() {
    local name=$1 start rc
    shift
    kg_log "$name"
    start=$(kg_now_us)
    # Not inside `if`/`||`: there bash would ignore `set -e` in the subshell.
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc == 0)); then
        _kg_step_record "$name" ok $(($(kg_now_us) - start))
    else
        _kg_step_record "$name" FAILED $(($(kg_now_us) - start))
        kg_warn "step failed (exit $rc): $name"
    fi
    return 0
}

kg_step_fatal() {
    local name=$1
    shift
    kg_log "$name"
    _KG_CURRENT_STEP=$name
    _KG_CURRENT_START=$(kg_now_us)
    "$@"
    _kg_step_record "$name" ok $(($(kg_now_us) - _KG_CURRENT_START))
    _KG_CURRENT_STEP=
}

kg_step_skip() {
    kg_log "$1 (skipped: $2)"
    _kg_step_record "$1" "skipped" 0
}

kg_summary() {
    local i st dur total
    if [[ -n "$_KG_CURRENT_STEP" ]]; then
        # A fatal step did not finish: the script is exiting from inside it.
        _kg_step_record "$_KG_CURRENT_STEP" FAILED $(($(kg_now_us) - _KG_CURRENT_START))
        _KG_CURRENT_STEP=
    fi
    total=$(($(kg_now_us) - KG_START_US))
    printf '\n==> summary\n' >&2
    for i in "${!_KG_STEP_NAMES[@]}"; do
        st=${_KG_STEP_STATUS[i]}
        if [[ "$st" == skipped ]]; then
            dur='-'
        else
            dur=$(kg_fmt_us "${_KG_STEP_US[i]}")
        fi
        printf '    %-8s %9s  %s\n' "$st" "$dur" "${_KG_STEP_NAMES[i]}" >&2
    done
    if ((KG_FAILED_STEPS > 0)); then
        printf '==> FAILED: %d step(s) failed; total time %s\n' "$KG_FAILED_STEPS" "$(kg_fmt_us "$total")" >&2
        return 1
    fi
    printf '==> OK: all steps succeeded; total time %s\n' "$(kg_fmt_us "$total")" >&2
    return 0
}
