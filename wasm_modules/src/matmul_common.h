/* The matrices of the matmul workload, shared by matmul_tile and matmul_check.
 *
 * A and B are n x n int64 matrices drawn from one xorshift32 stream:
 *   state = seed (1 .. 2^32-1); each step: x ^= x << 13; x ^= x >> 17; x ^= x << 5 (mod 2^32)
 *   value of a step = (x >> 16) - 32768, an integer in [-32768, 32767]
 *   steps 1 .. n*n fill A row by row, steps n*n+1 .. 2*n*n fill B row by row.
 * C = A x B is computed with exact 64-bit integer arithmetic.
 * A tile output is "MMT1", then n, i0, i1, j0, j1 (u32 little-endian; half-open
 * ranges), then C[i0:i1, j0:j1] row by row as int64 little-endian.
 */
#ifndef BXTHRE3_MATMUL_COMMON_H
#define BXTHRE3_MATMUL_COMMON_H

#include <stdint.h>

#define MM_MAX_N 1024u
#define MM_HEADER_BYTES 24u

static inline int32_t mm_next(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return (int32_t)(x >> 16) - 32768;
}

#endif
