#!/usr/bin/env bash
# Bxthre3 bootstrap: sets up this device (Linux, a cloud instance, or Android in Termux), then
# starts the role you pick, or runs a subcommand.
#
#   ./bootstrap.sh                  set up, ask for the role and RAM per node, start it
#   ./bootstrap.sh --role N [...]   the same without questions (see the options below)
#   ./bootstrap.sh run DAG.yaml     run a DAG on an embedded local cluster and print its results
#   ./bootstrap.sh test [ARGS...]   run the whole test suite (extra ARGS go to pytest; --dry-run first: list)
#   ./bootstrap.sh install          only set up
#   ./bootstrap.sh -- ARGS...       pass ARGS to the `bxthre3` command
#
# Roles: 1 UI Node, 2 Controller + Node Manager, 3 Node Manager only, 4 Host Node only, 5 All components.
# Options: --role N|NAME  --ram-per-node MB  --controller IP[:PORT]  --token TOKEN  --yes  --dry-run
# Other Pythons under `test`: BXTHRE3_PYTHONS (default "3.10 3.13": tests/unit but the tests marked
# one_python, and `-m install`, run on each first; "" skips them), BXTHRE3_REQUIRE_PYTHONS=1 (fail when one is not found instead of skipping it).
# Environment: BXTHRE3_ROLE, RAM_PER_NODE, BXTHRE3_CONTROLLER, BXTHRE3_TOKEN, BXTHRE3_VENV (default
# .venv here), PYTHON (default python3), SYSFS_ROOT (default /sys), PROC_ROOT (default /proc), CI=true (never ask),
# BXTHRE3_NEWEST=1 (install the newest releases into .venv-newest instead of constraints.txt's pins),
# BXTHRE3_REQUIRE_TOOLCHAINS=0 (`test` skips conformance builds whose compiler is missing, and the browser
# test when Chromium is, instead of failing),
# BXTHRE3_LOG_DIR (default: logs/ in this checkout for everything started from here),
# BXTHRE3_TEST_WORKERS (`test` runs pytest in this many processes with pytest-xdist; default 1: one process).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NEWEST="${BXTHRE3_NEWEST:-0}"
if [ "$NEWEST" = 1 ]; then VENV="${BXTHRE3_VENV:-$ROOT/.venv-newest}"; else VENV="${BXTHRE3_VENV:-$ROOT/.venv}"; fi
PYTHON="${PYTHON:-python3}"
SYSFS_ROOT="${SYSFS_ROOT:-/sys}"
PROC_ROOT="${PROC_ROOT:-/proc}"
# The same limits as bxthre3/common/user_input.py (a test keeps them equal): RAM per host, in MB.
MIN_NODE_RAM_MB=16
MAX_NODE_RAM_MB=4096
DEFAULT_RAM_MB=128
MIN_FREE_RAM_MB=512
ANDROID_MAX_NODES=4
DRY_RUN=0
ASSUME_YES=0
ROLE="${BXTHRE3_ROLE:-}"
RAM_PER_NODE="${RAM_PER_NODE:-}"
CONTROLLER="${BXTHRE3_CONTROLLER:-}"
TOKEN="${BXTHRE3_TOKEN:-}"
PLATFORM=""
CLOUD=""

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() {
    printf 'bootstrap: error: %s\n' "$*" >&2
    exit 1
}

# Every action that changes the machine goes through here, so --dry-run shows them all.
act() {
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: %s\n' "$*"
    else
        "$@"
    fi
}

# Started from a checkout, the roles keep the seed layout: their logs in logs/ beside this script (a pip
# install uses the XDG state directory instead). An exported BXTHRE3_LOG_DIR still wins.
use_checkout_logs() { export BXTHRE3_LOG_DIR="${BXTHRE3_LOG_DIR:-$ROOT/logs}"; }

can_ask() { [ "$ASSUME_YES" -eq 0 ] && [ "${CI:-}" != "true" ] && [ -t 0 ] && [ -t 1 ]; }

# ---------------------------------------------------------------------------------- platform

is_termux() {
    [ -n "${TERMUX_VERSION:-}" ] && return 0
    case "${PREFIX:-}" in /data/data/com.termux/*) return 0 ;; esac
    return 1
}

# One DMI file, or nothing when it is missing or unreadable (containers, phones, locked-down VMs).
dmi() { cat "$SYSFS_ROOT/class/dmi/id/$1" 2>/dev/null || true; }

# The cloud provider from DMI data (what the instance's firmware says), or "" for none we know.
detect_cloud() {
    local vendor product bios asset uuid
    vendor="$(dmi sys_vendor)"
    product="$(dmi product_name)"
    bios="$(dmi bios_vendor)"
    asset="$(dmi chassis_asset_tag)"
    uuid="$(cat "$SYSFS_ROOT/hypervisor/uuid" 2>/dev/null || true)"
    case "$vendor|$bios" in
        *"Amazon EC2"*) echo aws; return ;;
    esac
    case "$uuid" in ec2*|EC2*) echo aws; return ;; esac
    case "$product" in *"Google Compute Engine"*) echo gce; return ;; esac
    [ "$asset" = "7783-7084-3265-9085-8269-3286-77" ] && { echo azure; return; }
    case "$vendor" in
        *DigitalOcean*) echo digitalocean; return ;;
        *Hetzner*) echo hetzner; return ;;
        *Linode*|*Akamai*) echo linode; return ;;
    esac
    case "$asset" in *OracleCloud*) echo oracle; return ;; esac
    echo ""
}

detect_platform() {
    if is_termux; then
        PLATFORM=termux
    else
        CLOUD="$(detect_cloud)"
        if [ -n "$CLOUD" ]; then PLATFORM=cloud; else PLATFORM=linux; fi
    fi
}

# ---------------------------------------------------------------------------------- packages

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        act "$@"
    elif command -v sudo >/dev/null 2>&1; then
        act sudo "$@"
    else
        die "need root to run: $* (install sudo or run as root)"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get here; install them by hand"
    log "installing Debian packages: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then  # once per run, however many groups of packages are installed
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Python, venv support and a C toolchain with Python headers (pywasm3 builds from source).
ensure_debian_packages() {
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
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    elif [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
        apt_install "${missing[@]}"
    else
        log "missing test packages (install them as root): ${missing[*]}"
    fi
}

# Termux: packages from its own repository (pkg); psutil and libzmq prebuilt there, never pip's pip.
TERMUX_PACKAGES=(python clang cmake make pkg-config libzmq python-psutil termux-api)
ensure_termux_packages() {
    local missing=() p
    for p in "${TERMUX_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Termux packages: ${missing[*]}"
        act pkg install -y "${missing[@]}"
    fi
}

# The fast engine where a wheel for this machine exists and loads: Linux and macOS on x86_64/aarch64, and
# 64-bit Android (wasmtime publishes android arm64/x86_64 wheels since 33.0). A wheel that installs but does
# not load (pip's py3-none-any fallback has no native library; a phone may refuse to run JIT code) is removed
# again, so hosts keep Wasm3 without probing wasmtime at every start. Arguments: pip's pin options.
ensure_wasmtime() {
    local why machine
    if [ "$PLATFORM" = termux ]; then
        machine="$(uname -m 2>/dev/null || echo unknown)"
        case "$machine" in
            aarch64 | x86_64) ;;
            *) log "no wasmtime wheel for $machine Android (64-bit only): hosts run tasks in Wasm3"; return 0 ;;
        esac
    fi
    if ! act "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary wasmtime \
        "$@" -e "${ROOT}[wasmtime]"; then
        log "no wasmtime wheel for this machine: hosts run tasks in Wasm3"
        return 0
    fi
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: check that wasmtime loads (bxthre3.wasm.choice.wasmtime_problem)\n'
        return 0
    fi
    why="$("$VENV/bin/python" -c 'from bxthre3.wasm.choice import wasmtime_problem as p; print(p() or "")' \
        2>/dev/null)" || why="the load check could not run"
    [ -z "$why" ] && return 0
    log "wasmtime installed but does not load here ($why): removing it, hosts run tasks in Wasm3"
    act "$VENV/bin/python" -m pip uninstall --quiet --disable-pip-version-check --yes wasmtime || true
}

# Reinstalls only when pyproject.toml or constraints.txt changed since the last install (idempotent and fast).
# The versions come from constraints.txt (what the suite last passed with), so a release made yesterday
# cannot break a fresh install; BXTHRE3_NEWEST=1 takes the newest releases the ranges allow instead.
ensure_venv() {
    local extra=() stamp="$VENV/.bxthre3-installed" want pins=()
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        # On Termux the venv sees pkg's psutil (pip cannot build it there).
        [ "$PLATFORM" = termux ] && extra=(--system-site-packages)
        act "$PYTHON" -m venv "${extra[@]}" "$VENV"
    fi
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | cksum) newest=$NEWEST"
    if [ "$NEWEST" = 1 ]; then
        pins=(--upgrade --upgrade-strategy eager)
    elif [ "$PLATFORM" != termux ]; then
        # Termux keeps its own psutil and builds pyzmq against its libzmq: the Linux pins do not apply there.
        pins=(--constraint "$ROOT/constraints.txt")
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing bxthre3 and its dependencies into $VENV (first run takes a minute)"
        if [ "$PLATFORM" = termux ]; then
            # pyzmq against Termux's libzmq (its wheels do not run on Android); pip itself is left alone.
            act env ZMQ_PREFIX="${PREFIX:-/data/data/com.termux/files/usr}" \
                "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-binary pyzmq pyzmq
            act "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" -e "$ROOT"
        else
            act "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" -e "${ROOT}[test]"
        fi
        ensure_wasmtime "${pins[@]}"
        if [ "$DRY_RUN" -eq 1 ]; then
            printf 'would run: record %s\n' "$stamp"
        else
            printf '%s' "$want" >"$stamp"
        fi
    fi
}

# `bxthre3` on PATH: a link in $PREFIX/bin on Termux, else in ~/.local/bin.
# A link to another checkout (or a pipx install) is not taken over silently: asked on a terminal,
# replaced with --yes, else left alone with a note saying how.
ensure_on_path() {
    local bindir link current answer
    if [ "$PLATFORM" = termux ]; then bindir="${PREFIX:-/data/data/com.termux/files/usr}/bin"; else bindir="$HOME/.local/bin"; fi
    link="$bindir/bxthre3"
    current="$(readlink "$link" 2>/dev/null || true)"
    if [ "$current" != "$VENV/bin/bxthre3" ]; then
        if [ -e "$link" ] || [ -L "$link" ]; then
            if [ -z "$current" ]; then
                log "left $link alone: it is not a link of ours (a pipx or pip install?); remove it to use this checkout"
                return 0
            fi
            if can_ask; then
                read -r -p "$link points at $current; point it at this checkout ($VENV) instead? [y/N] " answer || answer=""
                case "$answer" in
                    y|Y|yes|YES) ;;
                    *) log "left $link pointing at $current"; return 0 ;;
                esac
            elif [ "$ASSUME_YES" -eq 1 ]; then
                log "repointing $link from $current to $VENV/bin/bxthre3 (--yes)"
            else
                log "left $link pointing at $current; run with --yes (or answer on a terminal) to point it here"
                return 0
            fi
        fi
        act mkdir -p "$bindir"
        act ln -sfn "$VENV/bin/bxthre3" "$link"
    fi
    case ":$PATH:" in *":$bindir:"*) ;; *) log "add $bindir to PATH to type 'bxthre3' anywhere" ;; esac
}

# Termux:Boot and Termux:Widget scripts, copied only when they differ.
ensure_termux_kit() {
    local src dst pair
    for pair in "boot/start-bxthre3:$HOME/.termux/boot/start-bxthre3" \
                "shortcuts/bxthre3-start:$HOME/.shortcuts/bxthre3-start" \
                "shortcuts/bxthre3-stop:$HOME/.shortcuts/bxthre3-stop"; do
        src="$ROOT/termux/${pair%%:*}"
        dst="${pair#*:}"
        if ! cmp -s "$src" "$dst"; then
            act mkdir -p "$(dirname "$dst")"
            act install -m 0755 "$src" "$dst"
        fi
    done
}

# Not named `install`: ensure_termux_kit runs install(1), which a function of that name would shadow.
set_up_device() {
    detect_platform
    log "platform: $PLATFORM${CLOUD:+ ($CLOUD)}"
    case "$PLATFORM" in
        termux) ensure_termux_packages ;;
        *) ensure_debian_packages ;;
    esac
    ensure_venv
    ensure_on_path
    [ "$PLATFORM" = termux ] && ensure_termux_kit
    return 0
}

# What the test suite needs beyond the install: iproute2's `ip` (the multi-device test builds network
# namespaces), ShellCheck (lints this script), and the toolchains the conformance suite (tests/conformance)
# builds its WebAssembly programs with, each compared there with the same source built natively:
# clang 14 and 19 with lld for wasm32-wasi, wasi-libc, libc++ for wasm32, and Debian's rustc with its
# wasm32-wasi standard library (/usr/bin/rustc: a rustup toolchain earlier on PATH usually lacks it).
# g++ builds the native twin of the C++ program. Chromium is the real browser `ui --web` is tested in
# (tests/integration/test_web_ui.py, headless). Checked per package with dpkg-query, installed with
# apt-get (as root, or through sudo) when missing; without either they are left missing, and the
# conformance fixtures fail under `test` (BXTHRE3_REQUIRE_TOOLCHAINS=1) instead of skipping.
TEST_DEBS=(iproute2 shellcheck g++
           clang-14 lld-14 libclang-rt-14-dev-wasm32 clang-19 lld-19 libclang-rt-19-dev-wasm32
           wasi-libc libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 rustc libstd-rust-dev-wasm32 chromium)
deb_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
ensure_test_packages() {
    local missing=() p
    if ! command -v apt-get >/dev/null 2>&1; then
        log "no apt-get here: install the test toolchains by hand (${TEST_DEBS[*]})"
        return 0
    fi
    for p in "${TEST_DEBS[@]}"; do
        deb_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    elif [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
        apt_install "${missing[@]}"
    else
        log "missing test packages (install them as root): ${missing[*]}"
    fi
}

# ---------------------------------------------------------------------------------- other Pythons

# `test` first runs a fast subset (tests/unit and the tests marked `install`) on the oldest and newest
# Python that pyproject.toml's requires-python admits, so a feature of the default Python (tomllib,
# datetime.UTC, ExceptionGroup, ...) or a pin without wheels for them cannot slip in unnoticed. Each gets
# its own venv beside $VENV (`.venv-py3.10`, ...), installed from the same constraints.txt (its
# environment markers pick each Python's pins) and reinstalled only when the pins change.
# Tests marked `one_python` prove nothing that depends on the Python version (mypy with its fixed
# python_version, fuzzing and scale tests of pure code): the whole suite runs them once, the subsets leave
# them out (they were a third of the unit tests' time there). BXTHRE3_PYTHONS="" skips the step; a Python
# not found is skipped with one line, unless BXTHRE3_REQUIRE_PYTHONS=1. Looked for as `pythonX.Y` on PATH
# (run once: a pyenv shim of a version not selected fails), then in $PYENV_ROOT/versions (default ~/.pyenv).
OTHER_PYTHONS="${BXTHRE3_PYTHONS-3.10 3.13}"

# The path of a working interpreter of version $1 (X.Y), or nothing.
find_python() {
    local want="$1" cand
    local check="import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)"
    for cand in "$(command -v "python$want" 2>/dev/null || true)" \
                "${PYENV_ROOT:-${HOME:-}/.pyenv}"/versions/"$want".*/bin/"python$want"; do
        if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "$check" >/dev/null 2>&1; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    return 1
}

test_other_pythons() {
    local want py venv stamp stamp_want rc pins=() found=() parallel=()
    [ "${1:-1}" -le 1 ] || parallel=(-n "$1")
    # 3.10's bundled pip (23.0) cannot build a wheel of a project without pyproject.toml (pywasm3) unless
    # told to use PEP 517, as newer pips always do: the install test's `pip wheel` needs it. For this step only.
    local -x PIP_USE_PEP517=1
    if [ "$PLATFORM" = termux ]; then
        [ -n "$OTHER_PYTHONS" ] && log "Termux: the suite runs on its one Python only (no other Pythons here)"
        return 0
    fi
    if [ "$NEWEST" = 1 ]; then pins=(--upgrade --upgrade-strategy eager); else pins=(--constraint "$ROOT/constraints.txt"); fi
    # All found (or the run refused) before the first one spends a minute.
    for want in $OTHER_PYTHONS; do
        case "$want" in 3.[0-9]|3.[0-9][0-9]) ;; *) die "BXTHRE3_PYTHONS: '$want' is not a Python version like 3.10" ;; esac
        if py="$(find_python "$want")"; then
            found+=("$want=$py")
        elif [ "${BXTHRE3_REQUIRE_PYTHONS:-0}" = 1 ]; then
            die "Python $want not found (python$want on PATH or ${PYENV_ROOT:-${HOME:-}/.pyenv}/versions/$want.*); install it, or leave it out of BXTHRE3_PYTHONS"
        else
            log "Python $want not found: skipping its fast subset (BXTHRE3_REQUIRE_PYTHONS=1 makes this an error)"
        fi
    done
    for want in "${found[@]}"; do
        py="${want#*=}"
        want="${want%%=*}"
        venv="$VENV-py$want"
        stamp="$venv/.bxthre3-installed"
        stamp_want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | cksum) newest=$NEWEST python=$py"
        [ -x "$venv/bin/python" ] || act "$py" -m venv "$venv"
        if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_want" ]; then
            log "installing bxthre3 into $venv for Python $want"
            act "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" -e "${ROOT}[test]" \
                || die "Python $want: installing into $venv failed (pip said why above; BXTHRE3_PYTHONS=\"\" skips this step)"
            act "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary wasmtime \
                "${pins[@]}" -e "${ROOT}[wasmtime]" || log "no wasmtime wheel for Python $want: its tests run Wasm3 only"
            if [ "$DRY_RUN" -eq 1 ]; then
                printf 'would run: record %s\n' "$stamp"
            else
                printf '%s' "$stamp_want" >"$stamp"
            fi
        fi
        log "Python $want: tests/unit (but the tests marked one_python) and the tests marked install"
        act "$venv/bin/python" -m pytest -q -p no:cacheprovider "${parallel[@]}" -m "not one_python" tests/unit \
            || die "Python $want: tests/unit failed"
        # Exit status 5 is "no test selected": nothing is marked install (yet), which is not a failure.
        rc=0
        act "$venv/bin/python" -m pytest -q -p no:cacheprovider -m install tests || rc=$?
        [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || die "Python $want: the tests marked install failed (exit $rc)"
    done
    return 0
}

# How many pytest processes `test` runs (pytest-xdist): BXTHRE3_TEST_WORKERS, default 1 (no pytest-xdist).
# Most tests wait on real subprocesses, sockets and timers rather than the CPU, so 2-3 processes on 2 CPUs
# take about half the time; but under that load a few timing-bound tests (TUI timers, hosts re-registering
# after a controller SIGKILL) failed now and then, so CI runs one process until they are made load-proof.
test_workers() {
    local want="${BXTHRE3_TEST_WORKERS:-}"
    if [ -n "$want" ]; then
        case "$want" in
            *[!0-9]*|0) die "BXTHRE3_TEST_WORKERS must be a whole number of processes (1 or more), not '$want'" ;;
        esac
        echo "$want"
        return
    fi
    echo 1
}

# The pytest arguments that spread the suite over processes, unless the caller's own say otherwise
# (-n/--numprocesses of their own, -p no:xdist, or --pdb, which needs the one process).
parallel_args() {
    local workers="$1" arg
    shift
    for arg in "$@"; do
        case "$arg" in
            -n|-n*|--numprocesses|--numprocesses=*|no:xdist|-pno:xdist|--pdb) return 0 ;;
        esac
    done
    [ "$workers" -gt 1 ] && echo "-n $workers"
    return 0
}

# ---------------------------------------------------------------------------------- roles

role_key() {
    case "$1" in
        1|ui) echo ui ;;
        2|controller) echo controller ;;
        3|node-manager) echo node-manager ;;
        4|host) echo host ;;
        5|all) echo all ;;
        *) return 1 ;;
    esac
}

available_ram_mb() {
    awk '/^MemAvailable:/ { print int($2 / 1024); found = 1 } END { if (!found) print 0 }' "$PROC_ROOT/meminfo" \
        2>/dev/null || echo 0
}

# The node manager's default cap: one host per CPU, at most $ANDROID_MAX_NODES on a phone.
max_nodes() {
    local cpus
    cpus="$(nproc 2>/dev/null || awk '/^processor/ { n++ } END { print n + 0 }' "$PROC_ROOT/cpuinfo" 2>/dev/null || echo 1)"
    [ "${cpus:-0}" -ge 1 ] 2>/dev/null || cpus=1
    if [ "$PLATFORM" = termux ] && [ "$cpus" -gt "$ANDROID_MAX_NODES" ]; then cpus=$ANDROID_MAX_NODES; fi
    echo "$cpus"
}

# Why a RAM figure is refused (the wording of bxthre3/common/user_input.py), or nothing.
ram_problem() {
    case "$1" in
        ''|*[!0-9]*) echo "RAM per node must be a whole number of MB, not '$1'"; return ;;
    esac
    if [ "${#1}" -gt 6 ] || [ "$1" -lt "$MIN_NODE_RAM_MB" ] || [ "$1" -gt "$MAX_NODE_RAM_MB" ]; then
        echo "RAM per node must be between $MIN_NODE_RAM_MB and $MAX_NODE_RAM_MB MB (a task's wasm32 memory tops out at $MAX_NODE_RAM_MB MB), not $1"
    fi
}

# A cluster token as `bxthre3 token` prints it: bxt1- and 43 URL-safe base64 characters.
token_ok() { [[ "$1" =~ ^bxt1-[A-Za-z0-9_-]{43}$ ]]; }

# Every question is asked again until the answer is usable: a typo must not end the setup.
ask_role() {
    local answer
    cat >&2 <<'EOF'
Which role should this device play?
  1) UI Node                   watch and drive a running controller
  2) Controller + Node Manager schedule DAGs here, and lend this device's RAM
  3) Node Manager only         lend this device's RAM to a controller
  4) Host Node only            one host that runs tasks
  5) All components            everything on this device
EOF
    while true; do
        read -r -p "Role [1-5, default 5]: " answer || die "no answer: pass --role 1-5"
        if role_key "${answer:-5}" >/dev/null; then ROLE="${answer:-5}"; return; fi
        printf "bootstrap: unknown role '%s': answer 1-5 (or ui, controller, node-manager, host, all)\n" "$answer" >&2
    done
}

# "N node(s) ...": what the node manager will run with this RAM per node, its CPU cap included.
nodes_line() {
    local ram="$1" available cap nodes
    available="$(available_ram_mb)"
    cap="$(max_nodes)"
    nodes=$(( (available - MIN_FREE_RAM_MB) / ram ))
    [ "$nodes" -lt 0 ] && nodes=0
    if [ "$nodes" -gt "$cap" ]; then
        echo "$cap node(s): ${available} MB available would fit $nodes, at most $cap (one per CPU; --max-nodes)"
    else
        echo "$nodes node(s) from ${available} MB available, ${MIN_FREE_RAM_MB} MB kept free"
    fi
}

ask_ram() {
    local answer problem prompt
    if [ "$ROLE" = host ]; then
        prompt="Memory limit of each task in MB [$DEFAULT_RAM_MB; $MIN_NODE_RAM_MB-$MAX_NODE_RAM_MB]: "
    else
        prompt="RAM per node in MB [$DEFAULT_RAM_MB: $(nodes_line "$DEFAULT_RAM_MB")]: "
    fi
    while true; do
        read -r -p "$prompt" answer || die "no answer: pass --ram-per-node MB"
        answer="${answer:-$DEFAULT_RAM_MB}"
        problem="$(ram_problem "$answer")"
        if [ -z "$problem" ]; then
            RAM_PER_NODE="$answer"
            [ "$ROLE" = host ] || log "RAM per node $answer MB: $(nodes_line "$answer")"
            return
        fi
        printf 'bootstrap: %s\n' "$problem" >&2
    done
}

ask_controller() {
    local answer
    while true; do
        read -r -p "Controller address (IP[:PORT]): " answer || die "no answer: pass --controller IP[:PORT]"
        if [[ "$answer" =~ ^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.:-]+)(:[0-9]{1,5})?$ ]]; then CONTROLLER="$answer"; return; fi
        printf "bootstrap: '%s' is not an address: type the IP (or IP:PORT) the controller printed, e.g. 192.168.1.10:5000\n" "$answer" >&2
    done
}

ask_token() {
    local answer
    while true; do
        read -r -s -p "Cluster token (\`bxthre3 token\` on the controller prints it): " answer || die "no answer: pass --token"
        printf '\n' >&2
        if token_ok "$answer"; then TOKEN="$answer"; return; fi
        printf "bootstrap: that is not a cluster token: it starts with 'bxt1-' and has 43 more characters\n" >&2
    done
}

# Fill in what the flags and environment left open: ask on a terminal, else take defaults or fail.
settle_choices() {
    if [ -z "$ROLE" ]; then
        if can_ask; then ask_role; else die "no role: pass --role 1-5 (or set BXTHRE3_ROLE); nothing is asked without a terminal"; fi
    fi
    role_key "$ROLE" >/dev/null || die "unknown role '$ROLE' (1-5, or ui, controller, node-manager, host, all)"
    ROLE="$(role_key "$ROLE")"
    if [ -z "$RAM_PER_NODE" ] && [ "$ROLE" != ui ]; then
        if can_ask; then ask_ram; else RAM_PER_NODE=$DEFAULT_RAM_MB; fi
    fi
    if [ "$ROLE" != ui ]; then
        local problem
        problem="$(ram_problem "$RAM_PER_NODE")"
        [ -z "$problem" ] || die "$problem (--ram-per-node or RAM_PER_NODE)"
    fi
    if [ "$PLATFORM" = cloud ] && [ -z "$CONTROLLER" ] && { [ "$ROLE" = node-manager ] || [ "$ROLE" = host ] || [ "$ROLE" = ui ]; }; then
        # Cloud networks carry no broadcast: the controller cannot be discovered there.
        if can_ask; then ask_controller; fi
        [ -n "$CONTROLLER" ] || die "on a cloud instance ($CLOUD) pass --controller IP[:PORT]: cloud networks carry no broadcast"
    fi
    # Members of another device's cluster need its token; the controller roles make their own.
    if [ -z "$TOKEN" ] && { [ "$ROLE" = node-manager ] || [ "$ROLE" = host ] || [ "$ROLE" = ui ]; }; then
        if can_ask; then ask_token; fi
    fi
    if [ -n "$TOKEN" ] && ! token_ok "$TOKEN"; then
        die "--token (or BXTHRE3_TOKEN) is not a cluster token: 'bxt1-' and 43 more characters, as \`bxthre3 token\` prints"
    fi
    return 0
}

role_command() {
    local cmd=("$VENV/bin/bxthre3")
    case "$ROLE" in
        ui) cmd+=(ui) ;;
        controller) cmd+=(controller --with-node-manager --ram-per-node "$RAM_PER_NODE") ;;
        node-manager) cmd+=(node-manager --ram-per-node "$RAM_PER_NODE") ;;
        host) cmd+=(host --ram-limit "$RAM_PER_NODE") ;;
        all) cmd+=(all --ram-per-node "$RAM_PER_NODE") ;;
    esac
    if [ -n "$CONTROLLER" ] && [ "$ROLE" != controller ] && [ "$ROLE" != all ]; then
        cmd+=(--controller "$CONTROLLER")
    fi
    printf '%s\n' "${cmd[@]}"
}

# Remember the choice for Termux:Boot and the widgets (the token stays in the environment file, 0600).
save_choice() {
    local dir="$HOME/.config/bxthre3" file
    file="$dir/role.env"
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: write %s (role %s)\n' "$file" "$ROLE"
        return
    fi
    mkdir -p "$dir"
    umask 077
    {
        printf 'BXTHRE3_ROLE=%q\nRAM_PER_NODE=%q\nBXTHRE3_CONTROLLER=%q\n' "$ROLE" "$RAM_PER_NODE" "$CONTROLLER"
        [ -n "$TOKEN" ] && printf 'BXTHRE3_TOKEN=%q\n' "$TOKEN"
        printf 'BXTHRE3_HOME=%q\n' "$ROOT"
    } >"$file"
}

start_role() {
    local cmd=()
    mapfile -t cmd < <(role_command)
    save_choice
    [ -n "$TOKEN" ] && export BXTHRE3_TOKEN="$TOKEN"  # the environment, never argv (ps shows argv)
    use_checkout_logs
    log "starting: ${cmd[*]#"$VENV/bin/"} (logs in $BXTHRE3_LOG_DIR)"
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: %s\n' "${cmd[*]}"
        return
    fi
    exec "${cmd[@]}"
}

# ---------------------------------------------------------------------------------- main

parse_options() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --role) ROLE="${2:?--role needs a value}"; shift 2 ;;
            --role=*) ROLE="${1#*=}"; shift ;;
            --ram-per-node) RAM_PER_NODE="${2:?--ram-per-node needs a value}"; shift 2 ;;
            --ram-per-node=*) RAM_PER_NODE="${1#*=}"; shift ;;
            --controller) CONTROLLER="${2:?--controller needs a value}"; shift 2 ;;
            --controller=*) CONTROLLER="${1#*=}"; shift ;;
            --token) TOKEN="${2:?--token needs a value}"; shift 2 ;;
            --token=*) TOKEN="${1#*=}"; shift ;;
            --yes|-y) ASSUME_YES=1; shift ;;
            --dry-run|-n) DRY_RUN=1; shift ;;
            *) die "unknown option '$1' (see ./bootstrap.sh --help)" ;;
        esac
    done
}

main() {
    local sub="${1:-}"
    case "$sub" in
        install)
            shift
            parse_options "$@"
            set_up_device
            log "ready: $VENV/bin/bxthre3"
            ;;
        test)
            shift
            if [ "${1:-}" = --dry-run ]; then DRY_RUN=1; shift; fi
            local workers parallel
            workers="$(test_workers)"  # first: a bad BXTHRE3_TEST_WORKERS is told before any install
            parallel="$(parallel_args "$workers" "$@")"
            set_up_device
            ensure_test_packages
            cd "$ROOT"
            # Under `test` a missing toolchain fails the conformance suite instead of skipping it.
            export BXTHRE3_REQUIRE_TOOLCHAINS="${BXTHRE3_REQUIRE_TOOLCHAINS:-1}"
            test_other_pythons "$workers"
            act "$VENV/bin/python" -m ruff check bxthre3 tests benchmarks
            act "$VENV/bin/python" -m ruff format --check bxthre3 tests benchmarks
            # shellcheck disable=SC2086  # "-n N", or nothing: two words or none
            set -- $parallel "$@"
            if [ "$DRY_RUN" -eq 1 ]; then
                printf 'would run: env BXTHRE3_REQUIRE_TOOLCHAINS=%s %s\n' "$BXTHRE3_REQUIRE_TOOLCHAINS" \
                    "$VENV/bin/python -m pytest $*"
                return 0
            fi
            exec "$VENV/bin/python" -m pytest "$@"
            ;;
        run)
            shift
            [ $# -ge 1 ] || die "usage: ./bootstrap.sh run DAG.yaml"
            set_up_device
            use_checkout_logs
            exec "$VENV/bin/bxthre3" run "$@"
            ;;
        -h|--help|help)
            awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
            ;;
        --)
            shift
            set_up_device
            use_checkout_logs
            exec "$VENV/bin/bxthre3" "$@"
            ;;
        ""|-*)
            parse_options "$@"
            set_up_device
            settle_choices
            start_role
            ;;
        *)
            set_up_device
            use_checkout_logs
            exec "$VENV/bin/bxthre3" "$@"
            ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
