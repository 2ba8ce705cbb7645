/* mandel_assemble: joins mandel_tile outputs into one binary PGM image.
 *
 *   argv: task_id width height tiles
 *   stdin: exactly `tiles` mandel_tile outputs (split by BXTHRE3_INPUT_SIZES), any order
 *   stdout: "P5\n<width> <height>\n255\n" then width*height pixels
 *
 * Each tile places itself by its header. Every tile must match the image size and the
 * max_iter of the others, and together they must cover every pixel exactly once.
 */
#define WL_NAME "mandel_assemble"
#include "workload_common.h"

#define HEADER_BYTES 32u

int main(int argc, char **argv) {
    if (argc != 4) {
        wl_die(2, "expected 3 arguments (width height tiles), got %d", argc - 1);
    }
    uint32_t width = (uint32_t)wl_parse_u64(argv[1], "width", 1, 65536);
    uint32_t height = (uint32_t)wl_parse_u64(argv[2], "height", 1, 65536);
    uint64_t tiles = wl_parse_u64(argv[3], "tiles", 1, 1000000);
    uint64_t pixels = (uint64_t)width * height;
    if (pixels > 15u * 1024u * 1024u) {
        wl_die(2, "a %ux%u image is over the 15 MiB output budget", width, height);
    }

    size_t total, count;
    unsigned char *data = wl_read_stdin(&total);
    wl_part *parts = wl_split_stdin(data, total, &count);
    if (count != tiles) {
        wl_die(2, "expected %llu tiles on stdin, got %zu", (unsigned long long)tiles, count);
    }

    char head[32];
    int head_len = snprintf(head, sizeof head, "P5\n%u %u\n255\n", width, height);
    size_t size = (size_t)head_len + (size_t)pixels;
    unsigned char *out = malloc(size);
    unsigned char *covered = calloc((size_t)pixels, 1);
    if (out == NULL || covered == NULL) {
        wl_die(1, "out of memory for a %ux%u image", width, height);
    }
    memcpy(out, head, (size_t)head_len);
    unsigned char *image = out + head_len;

    uint32_t max_iter = 0;
    for (size_t t = 0; t < count; t++) {
        const unsigned char *p = parts[t].data;
        if (parts[t].len < HEADER_BYTES || memcmp(p, "MTL1", 4) != 0) {
            wl_die(2, "input %zu is not a mandel_tile output", t + 1);
        }
        uint32_t tw = wl_get_u32(p + 4), th = wl_get_u32(p + 8);
        uint32_t x0 = wl_get_u32(p + 12), y0 = wl_get_u32(p + 16);
        uint32_t w = wl_get_u32(p + 20), h = wl_get_u32(p + 24), it = wl_get_u32(p + 28);
        if (tw != width || th != height) {
            wl_die(2, "input %zu is a tile of a %ux%u image, not %ux%u", t + 1, tw, th, width, height);
        }
        if (t == 0) {
            max_iter = it;
        } else if (it != max_iter) {
            wl_die(2, "input %zu was rendered with max_iter %u, input 1 with %u", t + 1, it, max_iter);
        }
        if (w == 0 || h == 0 || x0 >= width || y0 >= height || w > width - x0 || h > height - y0) {
            wl_die(2, "input %zu: tile %ux%u at (%u,%u) lies outside the image", t + 1, w, h, x0, y0);
        }
        if (parts[t].len != HEADER_BYTES + (size_t)w * h) {
            wl_die(2, "input %zu: %zu bytes, expected %zu for a %ux%u tile", t + 1, parts[t].len,
                   HEADER_BYTES + (size_t)w * h, w, h);
        }
        const unsigned char *src = p + HEADER_BYTES;
        for (uint32_t y = y0; y < y0 + h; y++) {
            size_t row = (size_t)y * width;
            for (uint32_t x = x0; x < x0 + w; x++) {
                if (covered[row + x]) {
                    wl_die(2, "input %zu overlaps another tile at pixel (%u,%u)", t + 1, x, y);
                }
                covered[row + x] = 1;
            }
            memcpy(image + row + x0, src, w);
            src += w;
        }
    }
    for (uint64_t k = 0; k < pixels; k++) {
        if (!covered[k]) {
            wl_die(2, "no tile covers pixel (%u,%u)", (uint32_t)(k % width), (uint32_t)(k / width));
        }
    }
    wl_write_all(out, size);
    fprintf(stderr, "mandel_assemble: %ux%u image from %zu tiles, max_iter %u\n", width, height, count, max_iter);
    return 0;
}
