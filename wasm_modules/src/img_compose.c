/* img_compose: colours a grayscale layer with a palette, darkens it along edges, and writes
 * the picture, a half-size thumbnail in a subdirectory, and a manifest of both.
 *
 *   /in/layers/base.pgm:  the levels to colour (e.g. a blurred image)
 *   /in/layers/edges.pgm: edge strength, same size: each colour is scaled by (255 - edge) / 255
 *   /in/palette.txt:      colour stops, one "LEVEL R G B" per line (0-255, LEVEL ascending,
 *                         the first 0 and the last 255); levels between stops are interpolated
 *   /out/colour.ppm              the picture (binary PPM)
 *   /out/thumbs/colour_half.ppm  each 2x2 block averaged
 *   /out/manifest.txt            one "NAME WIDTH HEIGHT BYTES fnv1a32=HEX" line per image
 *   stdout: one line saying what was made
 */
#define WL_NAME "img_compose"
#include "image_io.h"

#define MAX_STOPS 64

typedef struct {
    int32_t level, rgb[3];
} stop;

static size_t read_palette(const char *path, stop *stops) {
    size_t size, n = 0;
    char *text = (char *)img_read_file(path, &size);
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '\r' || line[0] == '\0') {
            continue;
        }
        if (n == MAX_STOPS) {
            wl_die(2, "%s: more than %d colour stops", path, MAX_STOPS);
        }
        stop *s = &stops[n];
        if (sscanf(line, "%d %d %d %d", &s->level, &s->rgb[0], &s->rgb[1], &s->rgb[2]) != 4) {
            wl_die(2, "%s: line %zu is not LEVEL R G B", path, n + 1);
        }
        for (int c = 0; c < 4; c++) {
            int32_t v = c == 0 ? s->level : s->rgb[c - 1];
            if (v < 0 || v > 255) {
                wl_die(2, "%s: values must be 0-255", path);
            }
        }
        if (n > 0 && s->level <= stops[n - 1].level) {
            wl_die(2, "%s: levels must ascend", path);
        }
        n++;
    }
    if (n < 2 || stops[0].level != 0 || stops[n - 1].level != 255) {
        wl_die(2, "%s: needs at least 2 stops, the first at level 0 and the last at 255", path);
    }
    return n;
}

/* Write /out/NAME and append its manifest line to `manifest` (at most 256 bytes a line). */
static size_t add_to_manifest(char *manifest, size_t used, const char *name, const img_image *im) {
    unsigned char *bytes;
    size_t size = img_encode(im, &bytes);
    char path[64];
    snprintf(path, sizeof path, "/out/%s", name);
    img_write_file(path, bytes, size);
    used += (size_t)snprintf(manifest + used, 256, "%s %u %u %zu fnv1a32=%08x\n", name, im->width, im->height, size,
                             img_fnv1a(bytes, size));
    free(bytes);
    return used;
}

int main(void) {
    img_image base = img_read("/in/layers/base.pgm");
    img_image edges = img_read("/in/layers/edges.pgm");
    if (base.channels != 1 || edges.channels != 1 || base.width != edges.width || base.height != edges.height) {
        wl_die(2, "the layers must be grayscale images of one size");
    }
    stop stops[MAX_STOPS];
    size_t n = read_palette("/in/palette.txt", stops);

    img_image colour = img_new(base.width, base.height, 3);
    for (size_t i = 0; i < (size_t)base.width * base.height; i++) {
        int32_t v = base.px[i];
        size_t s = 0;
        while (stops[s + 1].level < v) {
            s++;
        }
        const stop *a = &stops[s], *b = &stops[s + 1];
        for (int c = 0; c < 3; c++) {
            int32_t value = a->rgb[c] + (b->rgb[c] - a->rgb[c]) * (v - a->level) / (b->level - a->level);
            colour.px[3 * i + c] = (unsigned char)(value * (255 - edges.px[i]) / 255);
        }
    }

    img_image half = img_new(base.width / 2 ? base.width / 2 : 1, base.height / 2 ? base.height / 2 : 1, 3);
    for (uint32_t y = 0; y < half.height; y++) {
        for (uint32_t x = 0; x < half.width; x++) {
            for (int c = 0; c < 3; c++) {
                uint32_t sum = 0;
                for (uint32_t k = 0; k < 4; k++) {
                    uint32_t sx = img_clamp(2 * x + (k & 1), colour.width);
                    uint32_t sy = img_clamp(2 * y + (k >> 1), colour.height);
                    sum += colour.px[3 * ((size_t)sy * colour.width + sx) + c];
                }
                half.px[3 * ((size_t)y * half.width + x) + c] = (unsigned char)(sum / 4);
            }
        }
    }

    char manifest[512];
    size_t used = add_to_manifest(manifest, 0, "colour.ppm", &colour);
    img_mkdir("/out/thumbs");
    used = add_to_manifest(manifest, used, "thumbs/colour_half.ppm", &half);
    img_write_file("/out/manifest.txt", manifest, used);
    printf("composed %ux%u from 2 layers and %zu colour stops\n", base.width, base.height, n);
    return 0;
}
