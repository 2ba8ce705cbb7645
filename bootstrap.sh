#!/usr/bin/env bash
# Bxthre3 bootstrap: installs what is missing into a virtualenv, then runs a subcommand.
#
#   ./bootstrap.sh run DAG.yaml     run a DAG on an embedded local cluster and print its results
#   ./bootstrap.sh test [ARGS...]   run the whole test suite (extra ARGS go to pytest)
#   ./bootstrap.sh install          only install
#   ./bootstrap.sh [bxthre3 ARGS]   anything else is passed to the `bxthre3` command
#
# Environment: BXTHRE3_VENV (default: .venv beside this script), PYTHON (default: python3).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${BXTHRE3_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (install sudo or run as root)"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get here; install them by hand"
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Python, venv support and a C toolchain with Python headers (pywasm3 and netifaces build from source).
ensure_system_packages() {
    local missing=()
    command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
    if command -v "$PYTHON" >/dev/null 2>&1; then
        "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
        local inc
        inc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
        [ -f "$inc/Python.h" ] || missing+=(python3-dev)
    else
        missing+=(python3-venv python3-dev)
    fi
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

# Reinstalls only when pyproject.toml changed since the last install (idempotent and fast).
ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.bxthre3-installed" want
    want="$(cksum <"$ROOT/pyproject.toml")"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing bxthre3 and its dependencies into $VENV (first run takes a minute)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
        printf '%s' "$want" >"$stamp"
    fi
}

install() {
    ensure_system_packages
    ensure_venv
}

# The multi-device test builds network namespaces with iproute2's `ip` (it skips, saying why, without root).
ensure_test_packages() {
    if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt_install iproute2
    fi
}

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        install)
            install
            log "ready: $VENV/bin/bxthre3"
            ;;
        test)
            install
            ensure_test_packages
            cd "$ROOT"
            "$VENV/bin/python" -m ruff check bxthre3 tests benchmarks
            exec "$VENV/bin/python" -m pytest "$@"
            ;;
        run)
            [ $# -ge 1 ] || die "usage: ./bootstrap.sh run DAG.yaml"
            install
            exec "$VENV/bin/bxthre3" run "$@"
            ;;
        -h|--help|help)
            sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            ;;
        "")
            install
            exec "$VENV/bin/bxthre3"
            ;;
        *)
            install
            exec "$VENV/bin/bxthre3" "$cmd" "$@"
            ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
