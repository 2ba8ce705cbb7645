/* calls: a call-heavy kernel for benchmarks/engines_vs_native.py (not a shipped module).
 *
 *   argv: program fib_n dispatches
 *   stdout: "fib <fib(fib_n)>\ndispatch <checksum>\n"
 *
 * Compute kernels spend their time in loops; much ordinary code spends it in calls. This
 * measures the two kinds a compiler cannot remove: a doubly recursive fib (direct calls,
 * one frame each) and `dispatches` calls through a table of function pointers picked by a
 * xorshift generator (call_indirect in WebAssembly: a table bounds check and a signature
 * check per call). The small functions are kept out of line so the calls stay calls, and
 * nothing in the timed part touches libc, whose native and WASI implementations differ.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static NOINLINE uint32_t fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

typedef uint32_t (*op_fn)(uint32_t, uint32_t);

static NOINLINE uint32_t op_add(uint32_t a, uint32_t b) { return a + b; }
static NOINLINE uint32_t op_xor(uint32_t a, uint32_t b) { return a ^ (b << 7); }
static NOINLINE uint32_t op_mul(uint32_t a, uint32_t b) { return a * (b | 1u); }
static NOINLINE uint32_t op_rot(uint32_t a, uint32_t b) { return (a << (b & 31u)) | (a >> ((32u - b) & 31u)); }
static NOINLINE uint32_t op_sub(uint32_t a, uint32_t b) { return a - (b >> 3); }
static NOINLINE uint32_t op_mix(uint32_t a, uint32_t b) { return (a ^ b) * 0x9e3779b1u; }
static NOINLINE uint32_t op_min(uint32_t a, uint32_t b) { return a < b ? a + 1u : b - 1u; }
static NOINLINE uint32_t op_neg(uint32_t a, uint32_t b) { return ~a + b; }

/* Volatile: the optimiser must not see which function each slot holds and call it directly. */
static op_fn volatile OPS[8] = {op_add, op_xor, op_mul, op_rot, op_sub, op_mix, op_min, op_neg};

static NOINLINE uint32_t dispatch(uint64_t count) {
    uint32_t state = 2463534242u, acc = 1u;
    for (uint64_t i = 0; i < count; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        acc = OPS[state & 7u](acc, state);
    }
    return acc;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: calls fib_n dispatches\n");
        return 2;
    }
    uint32_t n = (uint32_t)strtoul(argv[1], NULL, 10);
    uint64_t count = strtoull(argv[2], NULL, 10);
    if (n > 40) {
        fprintf(stderr, "calls: fib_n must be at most 40\n");
        return 2;
    }
    printf("fib %u\n", fib(n));
    printf("dispatch %u\n", dispatch(count));
    return 0;
}
