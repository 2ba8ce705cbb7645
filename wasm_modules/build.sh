#!/usr/bin/env bash
# Rebuilds every WebAssembly module from C.
#
#   wasm_modules/src/*.c        -> wasm_modules/<name>.wasm        (shipped example modules)
#   tests/data/modules/src/*.c  -> tests/data/modules/<name>.wasm  (test-only modules)
#
# The built .wasm files are committed, so users need no compiler; run this after
# editing a source. Environment: CC (default clang), CFLAGS (extra flags appended).
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cc="${CC:-clang}"
# -Os and --strip-all keep a trivial module near 13 KB; modules are shipped to every
# host that runs them, often over Wi-Fi to a phone.
flags=(--target=wasm32-wasi -Os -Wall -Wextra -Werror -Wl,--strip-all)
read -r -a extra <<<"${CFLAGS:-}"

missing() {
    echo "build.sh: $1" >&2
    echo "build.sh: on Debian/Ubuntu install the WebAssembly toolchain with:" >&2
    echo "    sudo apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    echo "build.sh: (use the libclang-rt-<N>-dev-wasm32 matching 'clang --version')" >&2
    exit 1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Debian's versioned packages (clang-19, lld-19) install only clang-19 and wasm-ld-19: use the
# newest when the plain names are missing (clang finds wasm-ld on PATH).
newest() { compgen -c "$1-" | grep -E "^$1-[0-9]+$" | sort -V | tail -n 1; }
if [[ -z "${CC:-}" ]] && ! command -v clang >/dev/null 2>&1; then
    cc="$(newest clang || true)"
    cc="${cc:-clang}"
fi
if ! command -v wasm-ld >/dev/null 2>&1 && ld="$(newest wasm-ld)" && [[ -n "$ld" ]]; then
    ln -s "$(command -v "$ld")" "$tmp/wasm-ld"
    PATH="$tmp:$PATH"
fi

command -v "$cc" >/dev/null 2>&1 || missing "'$cc' not found"
command -v wasm-ld >/dev/null 2>&1 || missing "'wasm-ld' not found (Debian package lld)"

# Preflight: a compiler without the wasi sysroot or the wasm32 builtins fails on every
# file with a wall of errors; one tiny program says which piece is missing instead.
printf '#include <stdio.h>\nint main(void) { puts("ok"); return 0; }\n' >"$tmp/probe.c"
if ! "$cc" "${flags[@]}" "$tmp/probe.c" -o "$tmp/probe.wasm" 2>"$tmp/probe.err"; then
    cat "$tmp/probe.err" >&2
    if grep -q "stdio.h" "$tmp/probe.err"; then
        missing "the WASI sysroot is missing (Debian package wasi-libc)"
    elif grep -q "libclang_rt" "$tmp/probe.err"; then
        missing "the wasm32 compiler runtime is missing (Debian package libclang-rt-14-dev-wasm32)"
    fi
    missing "'$cc --target=wasm32-wasi' cannot build a hello world (see above)"
fi

build_dir() {
    local src_dir="$1" out_dir="$2" src name
    shopt -s nullglob
    for src in "$src_dir"/*.c; do
        name="$(basename "$src" .c)"
        # Build to a temporary file first so an interrupted build never leaves a
        # truncated module where a committed one was.
        "$cc" "${flags[@]}" "${extra[@]}" "$src" -o "$tmp/$name.wasm"
        mv -f "$tmp/$name.wasm" "$out_dir/$name.wasm"
        printf '%8d  %s\n' "$(wc -c <"$out_dir/$name.wasm")" "${out_dir#"$root"/}/$name.wasm"
    done
    shopt -u nullglob
}

build_dir "$here/src" "$here"
if [[ -d "$root/tests/data/modules/src" ]]; then
    build_dir "$root/tests/data/modules/src" "$root/tests/data/modules"
fi
if [[ -d "$root/tests/data/modules" ]]; then
    # A module cut short: the first 3000 bytes of greet_1 (no C source can produce one).
    head -c 3000 "$here/greet_1.wasm" >"$root/tests/data/modules/truncated.wasm"
fi
