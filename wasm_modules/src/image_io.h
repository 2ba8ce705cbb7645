/* Helpers of the image pipeline modules (img_*): netpbm images and files under /in and /out.
 *
 * These modules use the per-task file system of the module ABI (docs/protocol.md): a
 * read-only /in holding the task's `files:` and a writable /out whose regular files become
 * the task's named outputs (`output_of_<task>/<name>` downstream). Header-only, like
 * workload_common.h, so build.sh compiles each .c file on its own.
 */
#ifndef BXTHRE3_IMAGE_IO_H
#define BXTHRE3_IMAGE_IO_H

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workload_common.h"

/* One 8-bit image: 1 channel (PGM, P5) or 3 (PPM, P6), rows top to bottom. */
typedef struct {
    uint32_t width, height, channels;
    unsigned char *px;
} img_image;

/* The whole file at `path`, NUL-terminated (so text files can be parsed in place). Plain
 * open/read/write rather than stdio: fewer WASI functions, and no buffering to flush. */
static inline unsigned char *img_read_file(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        wl_die(1, "cannot open %s: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            wl_die(1, "out of memory reading %s", path);
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0) {
            wl_die(1, "cannot read %s: %s", path, strerror(errno));
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    close(fd);
    buf[n] = '\0';
    *size = n;
    return buf;
}

/* Write `size` bytes to `path` (created or truncated). */
static inline void img_write_file(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        wl_die(1, "cannot create %s: %s", path, strerror(errno));
    }
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t put = write(fd, p, size);
        if (put <= 0) {
            wl_die(1, "cannot write %s: %s", path, strerror(errno));
        }
        p += put;
        size -= (size_t)put;
    }
    if (close(fd) != 0) {
        wl_die(1, "cannot write %s: %s", path, strerror(errno));
    }
}

/* mkdir that accepts a directory already there. */
static inline void img_mkdir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        wl_die(1, "cannot create directory %s: %s", path, strerror(errno));
    }
}

/* A header number of a netpbm file, skipping whitespace and '#' comments. */
static inline uint32_t img_header_number(const unsigned char *data, size_t size, size_t *pos, const char *path) {
    for (;;) {
        while (*pos < size && (data[*pos] == ' ' || data[*pos] == '\t' || data[*pos] == '\n' || data[*pos] == '\r')) {
            (*pos)++;
        }
        if (*pos < size && data[*pos] == '#') {
            while (*pos < size && data[*pos] != '\n') {
                (*pos)++;
            }
            continue;
        }
        break;
    }
    uint64_t value = 0;
    size_t start = *pos;
    while (*pos < size && data[*pos] >= '0' && data[*pos] <= '9' && value <= 100000) {
        value = value * 10 + (uint64_t)(data[*pos] - '0');
        (*pos)++;
    }
    if (*pos == start || value == 0 || value > 65535) {
        wl_die(2, "%s: bad netpbm header (expected a number from 1 to 65535)", path);
    }
    return (uint32_t)value;
}

/* Read a binary PGM (P5) or PPM (P6) with maxval 255. */
static inline img_image img_read(const char *path) {
    size_t size, pos = 2;
    unsigned char *data = img_read_file(path, &size);
    img_image im;
    if (size < 2 || data[0] != 'P' || (data[1] != '5' && data[1] != '6')) {
        wl_die(2, "%s: not a binary PGM (P5) or PPM (P6) image", path);
    }
    im.channels = data[1] == '5' ? 1 : 3;
    im.width = img_header_number(data, size, &pos, path);
    im.height = img_header_number(data, size, &pos, path);
    if (img_header_number(data, size, &pos, path) != 255) {
        wl_die(2, "%s: only maxval 255 is supported", path);
    }
    pos++; /* the one whitespace byte before the pixels */
    size_t need = (size_t)im.width * im.height * im.channels;
    if (pos > size || size - pos != need) {
        wl_die(2, "%s: %ux%u needs %zu pixel bytes, the file has %zu", path, im.width, im.height, need,
               pos > size ? (size_t)0 : size - pos);
    }
    im.px = data + pos;
    return im;
}

/* A blank image of the given shape. */
static inline img_image img_new(uint32_t width, uint32_t height, uint32_t channels) {
    img_image im = {width, height, channels, calloc((size_t)width * height * channels, 1)};
    if (im.px == NULL) {
        wl_die(1, "out of memory for a %ux%u image", width, height);
    }
    return im;
}

/* The image as netpbm bytes; returns their size, *out must be freed. */
static inline size_t img_encode(const img_image *im, unsigned char **out) {
    char head[40];
    int head_len = snprintf(head, sizeof head, "P%c\n%u %u\n255\n", im->channels == 1 ? '5' : '6', im->width,
                            im->height);
    size_t pixels = (size_t)im->width * im->height * im->channels;
    *out = malloc((size_t)head_len + pixels);
    if (*out == NULL) {
        wl_die(1, "out of memory encoding an image");
    }
    memcpy(*out, head, (size_t)head_len);
    memcpy(*out + head_len, im->px, pixels);
    return (size_t)head_len + pixels;
}

/* 32-bit FNV-1a of some bytes: the manifest's checksum (small, and easy to recompute in a test). */
static inline uint32_t img_fnv1a(const unsigned char *data, size_t size) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) {
        h = (h ^ data[i]) * 16777619u;
    }
    return h;
}

/* Clamp a coordinate into [0, n). */
static inline uint32_t img_clamp(int64_t v, uint32_t n) {
    return v < 0 ? 0 : v >= (int64_t)n ? n - 1 : (uint32_t)v;
}

#endif
