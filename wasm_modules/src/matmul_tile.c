/* matmul_tile: computes one tile C[i0:i1, j0:j1] of C = A x B (see matmul_common.h).
 *
 *   argv: task_id n seed i0 i1 j0 j1     (half-open ranges, 0 <= i0 < i1 <= n)
 *   stdout: the tile in the binary format of matmul_common.h
 *
 * Generating the matrices costs 2*n*n PRNG steps; only A's rows i0..i1 and B's columns
 * j0..j1 are kept.
 */
#define WL_NAME "matmul_tile"
#include "workload_common.h"
#include "matmul_common.h"

int main(int argc, char **argv) {
    if (argc != 7) {
        wl_die(2, "expected 6 arguments (n seed i0 i1 j0 j1), got %d", argc - 1);
    }
    uint32_t n = (uint32_t)wl_parse_u64(argv[1], "n", 1, MM_MAX_N);
    uint32_t seed = (uint32_t)wl_parse_u64(argv[2], "seed", 1, UINT32_MAX);
    uint32_t i0 = (uint32_t)wl_parse_u64(argv[3], "i0", 0, n - 1);
    uint32_t i1 = (uint32_t)wl_parse_u64(argv[4], "i1", i0 + 1, n);
    uint32_t j0 = (uint32_t)wl_parse_u64(argv[5], "j0", 0, n - 1);
    uint32_t j1 = (uint32_t)wl_parse_u64(argv[6], "j1", j0 + 1, n);
    uint32_t rows = i1 - i0, cols = j1 - j0;

    int64_t *a = malloc((size_t)rows * n * sizeof *a);  /* A[i0:i1, :] */
    int64_t *bt = malloc((size_t)cols * n * sizeof *bt); /* B[:, j0:j1] transposed */
    size_t size = MM_HEADER_BYTES + (size_t)rows * cols * 8;
    unsigned char *out = malloc(size);
    if (a == NULL || bt == NULL || out == NULL) {
        wl_die(1, "out of memory for a %ux%u tile of n=%u", rows, cols, n);
    }

    uint32_t state = seed;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < n; j++) {
            int32_t v = mm_next(&state);
            if (i >= i0 && i < i1) {
                a[(size_t)(i - i0) * n + j] = v;
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < n; j++) {
            int32_t v = mm_next(&state);
            if (j >= j0 && j < j1) {
                bt[(size_t)(j - j0) * n + i] = v;
            }
        }
    }

    memcpy(out, "MMT1", 4);
    uint32_t fields[5] = {n, i0, i1, j0, j1};
    for (int k = 0; k < 5; k++) {
        wl_put_u32(out + 4 + 4 * k, fields[k]);
    }
    unsigned char *p = out + MM_HEADER_BYTES;
    for (uint32_t r = 0; r < rows; r++) {
        const int64_t *ar = a + (size_t)r * n;
        for (uint32_t c = 0; c < cols; c++) {
            const int64_t *bc = bt + (size_t)c * n;
            int64_t sum = 0;
            for (uint32_t k = 0; k < n; k++) {
                sum += ar[k] * bc[k];
            }
            wl_put_u64(p, (uint64_t)sum);
            p += 8;
        }
    }
    wl_write_all(out, size);
    return 0;
}
