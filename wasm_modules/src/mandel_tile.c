/* mandel_tile: renders one rectangle of a Mandelbrot image as 8-bit grey pixels.
 *
 *   argv: task_id width height x0 y0 w h max_iter
 *   stdout: a 32-byte header, then w*h pixels row by row (row y0 first).
 *     header = "MTL1", then width, height, x0, y0, w, h, max_iter as u32 little-endian
 *
 * The image spans re in [-2.25, 0.75] over its width and im in [1.5, -1.5] over its
 * height, sampled at pixel centres. The escape-time loop uses only IEEE double +, -, *
 * in a fixed order (see mandel_escape), so a Python float reimplementation agrees bit
 * for bit. Build without FMA contraction (wasm has no fused multiply-add; natively use
 * -ffp-contract=off). Pixel = 0 inside the set (max_iter reached), otherwise
 * 255 - floor(255 * i / max_iter) for escape after i iterations.
 */
#define WL_NAME "mandel_tile"
#include "workload_common.h"

#define MAX_SIDE 65536u
#define MAX_ITER 100000000u
#define HEADER_BYTES 32u

/* Iterations before z = z^2 + c escapes |z|^2 > 4, at most max_iter. */
static uint32_t mandel_escape(double cr, double ci, uint32_t max_iter) {
    double zr = 0.0, zi = 0.0;
    uint32_t i = 0;
    while (i < max_iter) {
        double zr2 = zr * zr;
        double zi2 = zi * zi;
        if (zr2 + zi2 > 4.0) {
            break;
        }
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
        i++;
    }
    return i;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        wl_die(2, "expected 7 arguments (width height x0 y0 w h max_iter), got %d", argc - 1);
    }
    uint32_t width = (uint32_t)wl_parse_u64(argv[1], "width", 1, MAX_SIDE);
    uint32_t height = (uint32_t)wl_parse_u64(argv[2], "height", 1, MAX_SIDE);
    uint32_t x0 = (uint32_t)wl_parse_u64(argv[3], "x0", 0, width - 1);
    uint32_t y0 = (uint32_t)wl_parse_u64(argv[4], "y0", 0, height - 1);
    uint32_t w = (uint32_t)wl_parse_u64(argv[5], "w", 1, width - x0);
    uint32_t h = (uint32_t)wl_parse_u64(argv[6], "h", 1, height - y0);
    uint32_t max_iter = (uint32_t)wl_parse_u64(argv[7], "max_iter", 1, MAX_ITER);
    if ((uint64_t)w * h > 15u * 1024u * 1024u) {
        wl_die(2, "tile %ux%u is over the 15 MiB output budget; use more tiles", w, h);
    }

    size_t size = HEADER_BYTES + (size_t)w * h;
    unsigned char *out = malloc(size);
    if (out == NULL) {
        wl_die(1, "out of memory for a %ux%u tile", w, h);
    }
    memcpy(out, "MTL1", 4);
    uint32_t fields[7] = {width, height, x0, y0, w, h, max_iter};
    for (int k = 0; k < 7; k++) {
        wl_put_u32(out + 4 + 4 * k, fields[k]);
    }

    double sx = 3.0 / (double)width;
    double sy = 3.0 / (double)height;
    unsigned char *px = out + HEADER_BYTES;
    for (uint32_t y = y0; y < y0 + h; y++) {
        double ci = 1.5 - ((double)y + 0.5) * sy;
        for (uint32_t x = x0; x < x0 + w; x++) {
            double cr = -2.25 + ((double)x + 0.5) * sx;
            uint32_t i = mandel_escape(cr, ci, max_iter);
            *px++ = i >= max_iter ? 0 : (unsigned char)(255u - (uint32_t)((uint64_t)i * 255u / max_iter));
        }
    }
    wl_write_all(out, size);
    free(out);
    return 0;
}
