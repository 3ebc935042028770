#!/usr/bin/env bash
# scripts/check-deploy.sh — checks deploy/ (docs/deploy.md) without deploying anything:
#
#   deploy/systemd/*.service
#     - `systemd-analyze verify` on a copy whose ExecStart points at the binaries built in
#       the target dir (verify needs the program to exist); any warning fails;
#     - the restart and hardening directives docs/deploy.md promises are present;
#     - `systemd-analyze security --offline=true`: overall exposure at most MAX_EXPOSURE;
#     - every KEYGATE_* / DATABASE_URL / CLOUDFLARE_* name a unit mentions is one its binary
#       reads (`env = "..."` in <component>/src/config.rs);
#     - MemoryDenyWriteExecute=yes suits the binary: no writable+executable segment and a
#       non-executable stack (readelf).
#   deploy/container/Containerfile.*
#     No container engine runs on this machine, so they are linted statically: every COPY
#     source exists in the repository (the build context is its root), every --from names an
#     earlier stage, every `cargo build -p` names a workspace package, the binary copied out
#     of the builder is a bin target of that package at the path of the profile used, EXPOSEd
#     ports are the binary's default ports, ENV names are read by the binary, the final stage
#     is debian:bookworm-slim with a non-root USER, a HEALTHCHECK and an ENTRYPOINT, and a
#     .dockerignore keeps target/ out of the context.
#
# Fails closed: deploy/systemd exists and systemd-analyze cannot be installed -> failure.
# Usage: ./scripts/check-deploy.sh
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/ensure.sh
source "$KG_ROOT/scripts/lib/ensure.sh"

cd "$KG_ROOT"

MAX_EXPOSURE=2.0
ERRORS=0
err() {
    printf 'ERROR: %s\n' "$*" >&2
    ERRORS=$((ERRORS + 1))
}

WORK=$(mktemp -d /tmp/keygate-check-deploy.XXXXXX)
kg_on_exit "rm -rf '$WORK'"

# component_of NAME — control-plane | kv-sync | gateway from a unit or Containerfile name.
component_of() {
    case "$1" in
    *control-plane*) echo control-plane ;;
    *kv-sync*) echo kv-sync ;;
    *gateway*) echo gateway ;;
    *) return 1 ;;
    esac
}

# check_env_names FILE COMPONENT — every env name FILE mentions is read by COMPONENT.
check_env_names() {
    local file=$1 comp=$2 name config
    config=$comp/src/config.rs
    [[ -f "$config" ]] || {
        err "$file: no $config to check its variables against"
        return
    }
    while read -r name; do
        # KEYGATE_LOG (the log filter) is read by the shared logging crate.
        grep -q "env = \"$name\"" "$config" ||
            { [[ -f logging/src/lib.rs ]] && grep -q "\"$name\"" logging/src/lib.rs; } ||
            err "$file: $name is not a variable keygate-$comp reads ($config)"
    done < <(grep -v '^[[:space:]]*#[[:space:]]*\(Build\|Run\|or \|docker\)' "$file" |
        grep -oE '\b(KEYGATE_[A-Z0-9_]+|DATABASE_URL|CLOUDFLARE_[A-Z0-9_]+)\b' | sort -u)
}

# Workspace packages and their bin targets: lines "PACKAGE BIN".
cargo metadata --format-version 1 --no-deps --locked >"$WORK/metadata.json"
python3 - "$WORK/metadata.json" >"$WORK/bins.txt" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
for p in meta["packages"]:
    print(p["name"], "-")
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(p["name"], t["name"])
PY
TARGET_DIR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["target_directory"])' "$WORK/metadata.json")

# ------------------------------------------------------------------ systemd

check_systemd() {
    local units=() unit base comp bin found prof out score d
    units=(deploy/systemd/*.service)
    [[ -e "${units[0]}" ]] || {
        err "deploy/systemd holds no .service file"
        return
    }
    if ! kg_have systemd-analyze; then
        ensure_apt_packages systemd
        kg_have systemd-analyze || kg_die "systemd-analyze still missing after apt-get install systemd"
    fi
    mkdir -p "$WORK/units" "$WORK/bin"
    for unit in "${units[@]}"; do
        base=$(basename "$unit")
        comp=$(component_of "$base") || {
            err "$unit: not a control-plane, kv-sync or gateway unit"
            continue
        }
        bin=$(sed -n 's#^ExecStart=/usr/local/bin/\([^ ]*\).*#\1#p' "$unit")
        [[ "$bin" == "keygate-$comp" ]] || err "$unit: ExecStart is not /usr/local/bin/keygate-$comp"
        # verify needs ExecStart to exist: the newest built binary of any profile.
        found=
        for prof in release gateway debug; do
            if [[ -x "$TARGET_DIR/$prof/keygate-$comp" ]] &&
                { [[ -z "$found" ]] || [[ "$TARGET_DIR/$prof/keygate-$comp" -nt "$found" ]]; }; then
                found=$TARGET_DIR/$prof/keygate-$comp
            fi
        done
        if [[ -z "$found" ]]; then
            kg_info "building keygate-$comp (debug) for systemd-analyze verify"
            cargo build --locked -p "keygate-$comp"
            found=$TARGET_DIR/debug/keygate-$comp
        fi
        ln -sf "$found" "$WORK/bin/keygate-$comp"
        sed "s#/usr/local/bin/#$WORK/bin/#g" "$unit" >"$WORK/units/$base"

        # Restart policy and hardening promised by docs/deploy.md.
        for d in 'Restart=on-failure' 'RestartSec=' 'StartLimitIntervalSec=' 'StartLimitBurst=' \
            'User=keygate' 'StateDirectory=' 'EnvironmentFile=/etc/keygate/' \
            'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
            'PrivateDevices=yes' 'ProtectKernelTunables=yes' 'ProtectControlGroups=yes' \
            'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'CapabilityBoundingSet=' \
            'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' 'SystemCallFilter=@system-service'; do
            grep -q "^$d" "$unit" || err "$unit: missing $d"
        done
        grep -q "^EnvironmentFile=/etc/keygate/$comp.env$" "$unit" ||
            err "$unit: EnvironmentFile is not /etc/keygate/$comp.env"
        check_env_names "$unit" "$comp"

        # MemoryDenyWriteExecute=yes: no W+X segment, no executable stack.
        if readelf -lW "$found" | awk '$1 == "LOAD" || $1 == "GNU_STACK"' | grep -Eq 'RWE|W E'; then
            err "$found has a writable and executable segment or stack: MemoryDenyWriteExecute=yes would break it"
        fi
    done

    kg_info "systemd-analyze verify (ExecStart -> $WORK/bin/*)"
    if ! out=$(cd "$WORK/units" && systemd-analyze verify ./*.service 2>&1) || [[ -n "$out" ]]; then
        printf '%s\n' "$out" | sed 's/^/    | /' >&2
        err "systemd-analyze verify reported problems"
    else
        kg_info "systemd-analyze verify: no warnings for ${#units[@]} units"
    fi
    for unit in "$WORK"/units/*.service; do
        out=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
        score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        if [[ -z "$score" ]]; then
            printf '%s\n' "$out" | tail -n 5 | sed 's/^/    | /' >&2
            err "$(basename "$unit"): systemd-analyze security gave no exposure level"
        elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
            err "$(basename "$unit"): exposure $score is above $MAX_EXPOSURE"
        else
            kg_info "$(basename "$unit"): systemd-analyze security exposure $score (at most $MAX_EXPOSURE)"
        fi
    done
}

# ---------------------------------------------------------------- containers

# lint_containerfile FILE
lint_containerfile() {
    local file=$1 comp stages=() last_from='' line src from pkg prof bin port user=''
    local pkgs=() copied_bins=() has_health='' has_entry='' has_dockerignore='' words=()
    comp=$(component_of "$(basename "$file")") || {
        err "$file: not a control-plane, kv-sync or gateway container file"
        return
    }
    # Join continuation lines, drop comments.
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$file" | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$' >"$WORK/cf"
    while read -r line; do
        case "$line" in
        FROM\ *)
            last_from=$(awk '{ print $2 }' <<<"$line")
            user=
            [[ "$line" =~ \ AS\ ([a-z0-9_-]+)$ ]] && stages+=("${BASH_REMATCH[1]}")
            ;;
        COPY\ --from=*)
            from=$(sed -E 's/^COPY --from=([^ ]+) .*/\1/' <<<"$line")
            printf '%s\n' "${stages[@]}" | grep -qx "$from" || err "$file: COPY --from=$from names no earlier stage"
            src=$(awk '{ print $3 }' <<<"$line")
            if [[ "$src" == /src/target/* ]]; then
                copied_bins+=("$src")
            fi
            ;;
        COPY\ *)
            # COPY SRC... DEST: every source must exist in the build context (the repo root).
            read -ra words <<<"${line#COPY }"
            for src in "${words[@]:0:${#words[@]}-1}"; do
                [[ "$src" == . ]] && continue
                [[ -e "$KG_ROOT/$src" ]] || err "$file: COPY source $src does not exist in the repository"
            done
            ;;
        RUN\ *cargo\ build*)
            prof=debug
            [[ "$line" == *--release* ]] && prof=release
            if [[ "$line" =~ --profile\ ([a-z0-9_-]+) ]]; then prof=${BASH_REMATCH[1]}; fi
            [[ "$line" == *--locked* ]] || err "$file: cargo build without --locked"
            while read -r pkg; do
                pkgs+=("$pkg:$prof")
                grep -q "^$pkg " "$WORK/bins.txt" || err "$file: cargo build -p $pkg: no such workspace package"
            done < <(grep -oE -- '-p [a-z0-9_-]+' <<<"$line" | awk '{ print $2 }')
            ;;
        EXPOSE\ *)
            for port in ${line#EXPOSE }; do
                grep -q ":$port\"" "$comp/src/config.rs" ||
                    err "$file: EXPOSE $port is not a default port of keygate-$comp ($comp/src/config.rs)"
            done
            ;;
        USER\ *) user=${line#USER } ;;
        HEALTHCHECK\ *) has_health=1 ;;
        ENTRYPOINT\ *) has_entry=1 ;;
        esac
    done <"$WORK/cf"

    ((${#pkgs[@]} > 0)) || err "$file: no cargo build -p"
    [[ "$last_from" == debian:bookworm-slim ]] || err "$file: the final stage is $last_from, not debian:bookworm-slim"
    [[ -n "$user" && "$user" != root && "$user" != 0 && "$user" != 0:* ]] ||
        err "$file: the final stage runs as root (no USER)"
    [[ -n "$has_health" ]] || err "$file: no HEALTHCHECK"
    [[ -n "$has_entry" ]] || err "$file: no ENTRYPOINT"
    grep -q '^FROM rust:1.95-bookworm' "$file" || err "$file: the builder is not rust:1.95-bookworm"
    if [[ "$comp" == control-plane ]]; then
        grep -q '^FROM node:20' "$file" || err "$file: no node:20 stage building the admin UI"
        grep -q 'COPY --from=[a-z]* /src/admin-web/dist /src/admin-web/dist' "$file" ||
            err "$file: the admin UI is not copied to admin-web/dist before cargo build (release embeds it)"
    fi
    # The binary copied out of the builder: target/<profile>/<bin of a built package>.
    ((${#copied_bins[@]} == 1)) || err "$file: expected one binary copied from the builder, found ${#copied_bins[@]}"
    for src in "${copied_bins[@]}"; do
        bin=$(basename "$src")
        prof=$(basename "$(dirname "$src")")
        local ok=
        for pkg in "${pkgs[@]}"; do
            if [[ "${pkg#*:}" == "$prof" ]] && grep -qx "${pkg%%:*} $bin" "$WORK/bins.txt"; then ok=1; fi
        done
        [[ -n "$ok" ]] || err "$file: $src is not a binary the builder built (packages/profiles: ${pkgs[*]})"
        [[ "$bin" == "keygate-$comp" ]] || err "$file: copies $bin, expected keygate-$comp"
        grep -q "ENTRYPOINT \[\"/usr/local/bin/$bin\"\]" "$file" || err "$file: ENTRYPOINT does not run /usr/local/bin/$bin"
    done
    check_env_names "$file" "$comp"
    [[ -f "$file.dockerignore" ]] && grep -qx 'target' "$file.dockerignore" && has_dockerignore=1
    [[ -n "$has_dockerignore" ]] || err "$file: no $file.dockerignore leaving target/ out of the build context"
    kg_info "$file: linted (FROM/COPY paths, packages, binary, ports, user, healthcheck)"
}

check_containers() {
    local f files=()
    for f in deploy/container/Containerfile.*; do
        [[ "$f" == *.dockerignore ]] || files+=("$f")
    done
    ((${#files[@]} > 0)) || {
        err "deploy/container holds no Containerfile.*"
        return
    }
    for f in "${files[@]}"; do lint_containerfile "$f"; done
    kg_info "images are not built here (no container engine runs on this machine): the container files were linted, not built"
}

if [[ -d deploy/systemd ]]; then
    kg_log "deploy/systemd: systemd units"
    check_systemd
fi
if [[ -d deploy/container ]]; then
    kg_log "deploy/container: container files"
    check_containers
fi
if ((ERRORS > 0)); then
    kg_die "deploy checks: $ERRORS problem(s)"
fi
kg_log "deploy checks passed"
