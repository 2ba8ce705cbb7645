/* A call through a function pointer, built by clang-19. LLVM 19 encodes call_indirect's table index
 * as a 5-byte LEB128 (its target_features say reference-types); Wasm3 0.5.0 reads one byte and
 * refused the module with "LEB encoded value overflow" until modules were normalised
 * (bxthre3/wasm_normalize.py re-encodes every LEB128 in its shortest form).
 *
 * Built with (Debian bookworm: apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32):
 *   clang-19 --target=wasm32-wasi -O2 -Wl,--strip-debug -o call_indirect_clang19.wasm call_indirect_clang19.c
 */
#include <stdio.h>

static int twice(int x) { return 2 * x; }
static int square(int x) { return x * x; }
int (*volatile ops[2])(int) = {twice, square};

int main(int argc, char **argv) {
    (void)argv;
    printf("twice 7 = %d\n", ops[0](7));
    printf("square 7 = %d\n", ops[1](7));
    printf("%d arguments\n", argc);
    return 0;
}
