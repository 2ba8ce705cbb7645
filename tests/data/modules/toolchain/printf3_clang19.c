/* Three lines through printf, built the default way (clang-19 -O2, not stripped). Wasm3 0.5.0 looks
 * functions up by their name-section name before their export name: in this build the name section
 * calls an internal function "_start", so before modules were normalised (bxthre3/wasm_normalize.py)
 * Wasm3 ran that one, __wasm_call_dtors (which flushes stdio) never ran, and only the first
 * (line-buffered) line came back from a task that "succeeded".
 *
 * Built with (Debian bookworm: apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32):
 *   clang-19 --target=wasm32-wasi -O2 -o printf3_clang19.wasm printf3_clang19.c
 */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("line 1 from %s\n", argc > 0 ? argv[0] : "?");
    printf("line 2: %d arguments\n", argc);
    printf("line 3: done");
    return 0;
}
