/* matmul_check: assembles matmul_tile outputs into C = A x B, checks them, prints a checksum.
 *
 *   argv: task_id n seed tiles
 *   stdin: exactly `tiles` matmul_tile outputs (split by BXTHRE3_INPUT_SIZES), any order
 *   stdout:
 *     n=<n> tiles=<tiles> sum=<sum> xor=<xor>
 *     C[0][0]=<v>
 *     C[<n/2>][<n/3>]=<v>
 *     C[<n-1>][<n-1>]=<v>
 *     verified=<k>
 *   sum: the sum of all entries mod 2^64, printed as a signed int64;
 *   xor: the XOR of all entries as uint64 two's complement, 16 hex digits.
 *   verified: how many entries were recomputed here as direct dot products (all agreed).
 *
 * Every tile must belong to this n, and the tiles must cover C exactly once.
 */
#define WL_NAME "matmul_check"
#include <inttypes.h>

#include "workload_common.h"
#include "matmul_common.h"

#define SPOT_CHECKS 8

int main(int argc, char **argv) {
    if (argc != 4) {
        wl_die(2, "expected 3 arguments (n seed tiles), got %d", argc - 1);
    }
    uint32_t n = (uint32_t)wl_parse_u64(argv[1], "n", 1, MM_MAX_N);
    uint32_t seed = (uint32_t)wl_parse_u64(argv[2], "seed", 1, UINT32_MAX);
    uint64_t tiles = wl_parse_u64(argv[3], "tiles", 1, (uint64_t)n * n);
    size_t nn = (size_t)n * n;

    size_t total, count;
    unsigned char *data = wl_read_stdin(&total);
    wl_part *parts = wl_split_stdin(data, total, &count);
    if (count != tiles) {
        wl_die(2, "expected %" PRIu64 " tiles on stdin, got %zu", tiles, count);
    }

    int64_t *c = malloc(nn * sizeof *c);
    unsigned char *covered = calloc(nn, 1);
    if (c == NULL || covered == NULL) {
        wl_die(1, "out of memory for n=%u", n);
    }
    for (size_t t = 0; t < count; t++) {
        const unsigned char *p = parts[t].data;
        if (parts[t].len < MM_HEADER_BYTES || memcmp(p, "MMT1", 4) != 0) {
            wl_die(2, "input %zu is not a matmul_tile output", t + 1);
        }
        uint32_t tn = wl_get_u32(p + 4), i0 = wl_get_u32(p + 8), i1 = wl_get_u32(p + 12);
        uint32_t j0 = wl_get_u32(p + 16), j1 = wl_get_u32(p + 20);
        if (tn != n) {
            wl_die(2, "input %zu is a tile of n=%u, not n=%u", t + 1, tn, n);
        }
        if (i0 >= i1 || i1 > n || j0 >= j1 || j1 > n) {
            wl_die(2, "input %zu: tile rows %u..%u, cols %u..%u lie outside C", t + 1, i0, i1, j0, j1);
        }
        size_t expected = MM_HEADER_BYTES + (size_t)(i1 - i0) * (j1 - j0) * 8;
        if (parts[t].len != expected) {
            wl_die(2, "input %zu: %zu bytes, expected %zu", t + 1, parts[t].len, expected);
        }
        const unsigned char *src = p + MM_HEADER_BYTES;
        for (uint32_t i = i0; i < i1; i++) {
            for (uint32_t j = j0; j < j1; j++) {
                size_t at = (size_t)i * n + j;
                if (covered[at]) {
                    wl_die(2, "input %zu overlaps another tile at C[%u][%u]", t + 1, i, j);
                }
                covered[at] = 1;
                c[at] = (int64_t)wl_get_u64(src);
                src += 8;
            }
        }
    }
    uint64_t sum = 0, xor = 0;
    for (size_t k = 0; k < nn; k++) {
        if (!covered[k]) {
            wl_die(2, "no tile covers C[%zu][%zu]", k / n, k % n);
        }
        sum += (uint64_t)c[k];
        xor ^= (uint64_t)c[k];
    }

    /* Spot checks: recompute a few entries from A and B directly. */
    int32_t *a = malloc(nn * sizeof *a);
    int32_t *b = malloc(nn * sizeof *b);
    if (a == NULL || b == NULL) {
        wl_die(1, "out of memory regenerating A and B for n=%u", n);
    }
    uint32_t state = seed;
    for (size_t k = 0; k < nn; k++) {
        a[k] = mm_next(&state);
    }
    for (size_t k = 0; k < nn; k++) {
        b[k] = mm_next(&state);
    }
    uint32_t spots[SPOT_CHECKS][2] = {
        {0, 0}, {0, n - 1}, {n - 1, 0}, {n - 1, n - 1}, {n / 2, n / 3}, {n / 3, n / 2}, {n / 5, 4 * n / 5}, {3 * n / 4, n / 7},
    };
    for (int s = 0; s < SPOT_CHECKS; s++) {
        uint32_t i = spots[s][0], j = spots[s][1];
        int64_t dot = 0;
        for (uint32_t k = 0; k < n; k++) {
            dot += (int64_t)a[(size_t)i * n + k] * b[(size_t)k * n + j];
        }
        if (dot != c[(size_t)i * n + j]) {
            wl_die(1, "C[%u][%u] is %" PRId64 " in the tiles but %" PRId64 " recomputed", i, j,
                   c[(size_t)i * n + j], dot);
        }
    }

    printf("n=%u tiles=%zu sum=%" PRId64 " xor=%016" PRIx64 "\n", n, count, (int64_t)sum, xor);
    printf("C[0][0]=%" PRId64 "\n", c[0]);
    printf("C[%u][%u]=%" PRId64 "\n", n / 2, n / 3, c[(size_t)(n / 2) * n + n / 3]);
    printf("C[%u][%u]=%" PRId64 "\n", n - 1, n - 1, c[nn - 1]);
    printf("verified=%d\n", SPOT_CHECKS);
    return fflush(stdout) == 0 ? 0 : 1;
}
