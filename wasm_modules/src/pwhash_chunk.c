/* pwhash_chunk: iterated SHA-256 of a chunk of passwords (a CPU-bound fan-out stage).
 *
 *   argv: task_id iterations password...
 *   stdout: one line per password, in argv order: "<password>\t<hex digest>\n"
 *
 * The digest is h_iterations where h_0 = SHA-256(password bytes) and
 * h_{k+1} = SHA-256(h_k) over the 32 raw bytes of h_k (so iterations=0 is plain SHA-256).
 * SHA-256 is implemented here from FIPS 180-4.
 */
#define WL_NAME "pwhash_chunk"
#include "workload_common.h"

#define MAX_ITERATIONS 100000000u

typedef struct {
    uint32_t h[8];
    unsigned char block[64];
    size_t used;     /* bytes waiting in block */
    uint64_t length; /* total message bytes */
} sha256_ctx;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void sha256_compress(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++) {
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
               (uint32_t)p[4 * t + 3];
    }
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void sha256_init(sha256_ctx *ctx) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->h, iv, sizeof iv);
    ctx->used = 0;
    ctx->length = 0;
}

static void sha256_update(sha256_ctx *ctx, const unsigned char *data, size_t len) {
    ctx->length += len;
    while (len > 0) {
        size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        len -= take;
        if (ctx->used == 64) {
            sha256_compress(ctx->h, ctx->block);
            ctx->used = 0;
        }
    }
}

static void sha256_final(sha256_ctx *ctx, unsigned char out[32]) {
    uint64_t bits = ctx->length * 8;
    ctx->block[ctx->used++] = 0x80;
    if (ctx->used > 56) {
        memset(ctx->block + ctx->used, 0, 64 - ctx->used);
        sha256_compress(ctx->h, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 56 - ctx->used);
    for (int k = 0; k < 8; k++) {
        ctx->block[56 + k] = (unsigned char)(bits >> (56 - 8 * k));
    }
    sha256_compress(ctx->h, ctx->block);
    for (int k = 0; k < 8; k++) {
        out[4 * k] = (unsigned char)(ctx->h[k] >> 24);
        out[4 * k + 1] = (unsigned char)(ctx->h[k] >> 16);
        out[4 * k + 2] = (unsigned char)(ctx->h[k] >> 8);
        out[4 * k + 3] = (unsigned char)ctx->h[k];
    }
}

static void sha256(const unsigned char *data, size_t len, unsigned char out[32]) {
    sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, data, len);
    sha256_final(&ctx, out);
}

/* SHA-256 of a 32-byte message: the padded block is fixed, so one compression. */
static void sha256_of_digest(const unsigned char in[32], unsigned char out[32]) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char block[64] = {0};
    uint32_t h[8];
    memcpy(block, in, 32);
    block[32] = 0x80;
    block[62] = 0x01; /* length: 256 bits, big-endian in the last 8 bytes */
    memcpy(h, iv, sizeof iv);
    sha256_compress(h, block);
    for (int k = 0; k < 8; k++) {
        out[4 * k] = (unsigned char)(h[k] >> 24);
        out[4 * k + 1] = (unsigned char)(h[k] >> 16);
        out[4 * k + 2] = (unsigned char)(h[k] >> 8);
        out[4 * k + 3] = (unsigned char)h[k];
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        wl_die(2, "expected arguments: iterations password..., got %d argument(s)", argc - 1);
    }
    uint64_t iterations = wl_parse_u64(argv[1], "iterations", 0, MAX_ITERATIONS);
    for (int a = 2; a < argc; a++) {
        if (argv[a][0] == '\0' || strpbrk(argv[a], "\t\r\n") != NULL) {
            wl_die(2, "password #%d is empty or holds a tab or newline", a - 1);
        }
    }
    static const char hex[] = "0123456789abcdef";
    for (int a = 2; a < argc; a++) {
        unsigned char digest[32];
        char text[65];
        sha256((const unsigned char *)argv[a], strlen(argv[a]), digest);
        for (uint64_t k = 0; k < iterations; k++) {
            sha256_of_digest(digest, digest);
        }
        for (int k = 0; k < 32; k++) {
            text[2 * k] = hex[digest[k] >> 4];
            text[2 * k + 1] = hex[digest[k] & 15];
        }
        text[64] = '\0';
        printf("%s\t%s\n", argv[a], text);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
