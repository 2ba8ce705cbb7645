/* img_report: checks a picture against its manifest and summarises it.
 *
 *   stdin:           a manifest of img_compose (its `output_of_<task>/manifest.txt`)
 *   /in/colour.ppm:  the picture the manifest describes (its `output_of_<task>/colour.ppm`)
 *   stdout: "colour.ppm: WIDTHxHEIGHT, checksum ok (fnv1a32=HEX), mean colour R G B"
 *   exit 1 when the picture's size or checksum disagrees with the manifest's line for it.
 */
#define WL_NAME "img_report"
#include "image_io.h"

int main(void) {
    size_t raw_size, size;
    unsigned char *raw = wl_read_stdin(&raw_size);
    char *manifest = malloc(raw_size + 1);
    if (manifest == NULL) {
        wl_die(1, "out of memory");
    }
    memcpy(manifest, raw, raw_size);
    manifest[raw_size] = '\0';
    unsigned char *bytes = img_read_file("/in/colour.ppm", &size);
    img_image im = img_read("/in/colour.ppm");
    uint32_t sum = img_fnv1a(bytes, size);

    unsigned width = 0, height = 0, listed = 0;
    size_t listed_size = 0;
    int found = 0;
    for (char *line = strtok(manifest, "\n"); line != NULL && !found; line = strtok(NULL, "\n")) {
        found = sscanf(line, "colour.ppm %u %u %zu fnv1a32=%x", &width, &height, &listed_size, &listed) == 4;
    }
    if (!found) {
        wl_die(2, "stdin: no 'colour.ppm WIDTH HEIGHT BYTES fnv1a32=HEX' line in the manifest");
    }
    if (width != im.width || height != im.height || listed_size != size || listed != sum) {
        wl_die(1, "colour.ppm does not match the manifest: %ux%u, %zu bytes, fnv1a32=%08x; manifest: %ux%u, %zu, %08x",
               im.width, im.height, size, sum, width, height, listed_size, listed);
    }
    uint64_t mean[3] = {0, 0, 0};
    size_t pixels = (size_t)im.width * im.height;
    for (size_t i = 0; i < pixels * im.channels; i++) {
        mean[i % 3] += im.px[i];
    }
    printf("colour.ppm: %ux%u, checksum ok (fnv1a32=%08x), mean colour %llu %llu %llu\n", im.width, im.height, sum,
           (unsigned long long)(mean[0] / pixels), (unsigned long long)(mean[1] / pixels),
           (unsigned long long)(mean[2] / pixels));
    return 0;
}
