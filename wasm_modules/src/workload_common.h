/* Helpers shared by the workload modules (mandel_*, matmul_*, pwhash_*).
 *
 * Header-only so that build.sh, which compiles each .c file of src/ on its own, needs no
 * change: every function is `static inline` (so unused ones draw no warning). Everything
 * here follows the module ABI of docs/protocol.md: argv holds literal inputs, stdin
 * holds upstream outputs concatenated, their byte lengths in BXTHRE3_INPUT_SIZES.
 */
#ifndef BXTHRE3_WORKLOAD_COMMON_H
#define BXTHRE3_WORKLOAD_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Name of the module for error messages; each module defines it before including. */
#ifndef WL_NAME
#error "define WL_NAME before including workload_common.h"
#endif

/* Print "<module>: <message>" as one line on stderr and exit with `code`. */
static inline void wl_die(int code, const char *fmt, ...) {
    va_list ap;
    fputs(WL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

/* Parse a whole decimal argument into [lo, hi]; any other text is a usage error. */
static inline uint64_t wl_parse_u64(const char *text, const char *what, uint64_t lo, uint64_t hi) {
    uint64_t value = 0;
    const char *p = text;
    if (*p == '\0') {
        wl_die(2, "%s is empty; expected an integer in [%llu, %llu]", what, (unsigned long long)lo,
               (unsigned long long)hi);
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || value > (UINT64_MAX - 9) / 10) {
            wl_die(2, "%s must be an integer in [%llu, %llu], not '%s'", what, (unsigned long long)lo,
                   (unsigned long long)hi, text);
        }
        value = value * 10 + (uint64_t)(*p - '0');
    }
    if (value < lo || value > hi) {
        wl_die(2, "%s must be in [%llu, %llu], not %s", what, (unsigned long long)lo, (unsigned long long)hi,
               text);
    }
    return value;
}

/* All of stdin in one heap buffer (never NULL on return; exits on failure). */
static inline unsigned char *wl_read_stdin(size_t *out_len) {
    size_t cap = 65536, len = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        wl_die(1, "out of memory reading stdin");
    }
    for (;;) {
        if (len == cap) {
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                wl_die(1, "out of memory reading stdin (%zu bytes so far)", len);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) {
            break;
        }
    }
    *out_len = len;
    return buf;
}

/* One stdin part: an upstream output or a file input. */
typedef struct {
    const unsigned char *data;
    size_t len;
} wl_part;

/* Split stdin into its parts using BXTHRE3_INPUT_SIZES. The sizes must add up to
 * exactly the stdin length: a workload module consumes binary outputs, so stray
 * bytes mean a wiring mistake and are an error rather than an extra part. */
static inline wl_part *wl_split_stdin(const unsigned char *data, size_t total, size_t *out_count) {
    const char *sizes = getenv("BXTHRE3_INPUT_SIZES");
    size_t count = 0, offset = 0;
    wl_part *parts = NULL;
    if (sizes != NULL && *sizes != '\0') {
        size_t commas = 0;
        for (const char *c = sizes; *c != '\0'; c++) {
            commas += (*c == ',');
        }
        parts = calloc(commas + 1, sizeof *parts);
        if (parts == NULL) {
            wl_die(1, "out of memory splitting stdin");
        }
        const char *p = sizes;
        for (;;) {
            char *end;
            unsigned long long size = strtoull(p, &end, 10);
            if (end == p || *p == '-' || (*end != ',' && *end != '\0')) {
                wl_die(2, "BXTHRE3_INPUT_SIZES is not a comma-separated list of sizes: '%s'", sizes);
            }
            if (size > total - offset) {
                wl_die(2, "BXTHRE3_INPUT_SIZES lists more bytes than stdin holds (%zu)", total);
            }
            parts[count].data = data + offset;
            parts[count].len = (size_t)size;
            count++;
            offset += (size_t)size;
            if (*end == '\0') {
                break;
            }
            p = end + 1;
        }
    }
    if (offset != total) {
        wl_die(2, "stdin holds %zu bytes but BXTHRE3_INPUT_SIZES accounts for %zu", total, offset);
    }
    *out_count = count;
    return parts;
}

static inline void wl_put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t wl_get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void wl_put_u64(unsigned char *p, uint64_t v) {
    wl_put_u32(p, (uint32_t)v);
    wl_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t wl_get_u64(const unsigned char *p) {
    return (uint64_t)wl_get_u32(p) | (uint64_t)wl_get_u32(p + 4) << 32;
}

/* Write all of buf to stdout, or die (a short write means the output limit was hit). */
static inline void wl_write_all(const void *buf, size_t len) {
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
        wl_die(1, "failed writing %zu bytes to stdout", len);
    }
}

#endif
