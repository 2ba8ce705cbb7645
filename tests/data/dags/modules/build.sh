#!/bin/sh
# Rebuild the test fixture modules used by tests/data/dags/*.yaml.
# Needs clang with the wasm32-wasi target (Debian: clang lld wasi-libc).
# The outputs are committed so the tests need no compiler.
set -eu
cd "$(dirname "$0")"
CC="${CC:-clang}"
FLAGS="--target=wasm32-wasi -Os -Wl,--strip-all"
$CC $FLAGS src/ok.c -o ok.wasm
$CC $FLAGS src/bad_imports.c -o bad_imports.wasm
$CC $FLAGS -mexec-model=reactor src/no_start.c -o no_start.wasm
printf 'This is a text file, not a WebAssembly module.\n' > not_wasm.wasm
ls -l ./*.wasm
