/* img_filter: one filter over a grayscale image, file in, file out.
 *
 *   argv: task_id blur RADIUS    box blur of (2*RADIUS+1)^2 pixels, borders clamped
 *         task_id edges          Sobel edge strength: min(255, (|gx| + |gy|) / 4)
 *   /in/image.pgm:  the image (binary PGM)
 *   /out/image.pgm: the filtered image
 *   stdout: one line: what was done, the size and the mean level
 */
#define WL_NAME "img_filter"
#include "image_io.h"

static uint32_t at(const img_image *im, int64_t x, int64_t y) {
    return im->px[(size_t)img_clamp(y, im->height) * im->width + img_clamp(x, im->width)];
}

int main(int argc, char **argv) {
    int blur = argc == 3 && strcmp(argv[1], "blur") == 0;
    int edges = argc == 2 && strcmp(argv[1], "edges") == 0;
    if (!blur && !edges) {
        wl_die(2, "usage: blur RADIUS | edges");
    }
    int64_t radius = blur ? (int64_t)wl_parse_u64(argv[2], "radius", 0, 32) : 0;
    img_image in = img_read("/in/image.pgm");
    if (in.channels != 1) {
        wl_die(2, "/in/image.pgm: expected a grayscale PGM");
    }
    img_image out = img_new(in.width, in.height, 1);
    uint64_t total = 0;
    for (int64_t y = 0; y < in.height; y++) {
        for (int64_t x = 0; x < in.width; x++) {
            uint32_t v;
            if (blur) {
                uint32_t sum = 0;
                for (int64_t dy = -radius; dy <= radius; dy++) {
                    for (int64_t dx = -radius; dx <= radius; dx++) {
                        sum += at(&in, x + dx, y + dy);
                    }
                }
                v = sum / (uint32_t)((2 * radius + 1) * (2 * radius + 1));
            } else {
                int64_t gx = (int64_t)at(&in, x + 1, y - 1) + 2 * at(&in, x + 1, y) + at(&in, x + 1, y + 1) -
                             at(&in, x - 1, y - 1) - 2 * at(&in, x - 1, y) - at(&in, x - 1, y + 1);
                int64_t gy = (int64_t)at(&in, x - 1, y + 1) + 2 * at(&in, x, y + 1) + at(&in, x + 1, y + 1) -
                             at(&in, x - 1, y - 1) - 2 * at(&in, x, y - 1) - at(&in, x + 1, y - 1);
                int64_t m = ((gx < 0 ? -gx : gx) + (gy < 0 ? -gy : gy)) / 4;
                v = m > 255 ? 255 : (uint32_t)m;
            }
            out.px[(size_t)y * in.width + (size_t)x] = (unsigned char)v;
            total += v;
        }
    }
    unsigned char *bytes;
    size_t size = img_encode(&out, &bytes);
    img_write_file("/out/image.pgm", bytes, size);
    printf("%s: %ux%u, mean level %llu\n", argv[1], in.width, in.height,
           (unsigned long long)(total / ((uint64_t)in.width * in.height)));
    return 0;
}
