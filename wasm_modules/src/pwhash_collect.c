/* pwhash_collect: concatenates pwhash_chunk outputs in DAG order, checking their form.
 *
 *   argv: task_id chunks
 *   stdin: exactly `chunks` pwhash_chunk outputs (split by BXTHRE3_INPUT_SIZES)
 *   stdout: the chunks concatenated: "<password>\t<64 hex digits>\n" lines
 */
#define WL_NAME "pwhash_collect"
#include "workload_common.h"

static int is_hex_digest(const unsigned char *p, size_t len) {
    if (len != 64) {
        return 0;
    }
    for (size_t k = 0; k < len; k++) {
        if (!((p[k] >= '0' && p[k] <= '9') || (p[k] >= 'a' && p[k] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        wl_die(2, "expected 1 argument (chunks), got %d", argc - 1);
    }
    uint64_t chunks = wl_parse_u64(argv[1], "chunks", 1, 1000000);
    size_t total, count;
    unsigned char *data = wl_read_stdin(&total);
    wl_part *parts = wl_split_stdin(data, total, &count);
    if (count != chunks) {
        wl_die(2, "expected %llu chunks on stdin, got %zu", (unsigned long long)chunks, count);
    }
    size_t lines = 0;
    for (size_t t = 0; t < count; t++) {
        const unsigned char *p = parts[t].data, *end = p + parts[t].len;
        if (parts[t].len == 0 || end[-1] != '\n') {
            wl_die(2, "chunk %zu is empty or does not end with a newline", t + 1);
        }
        while (p < end) {
            const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
            const unsigned char *tab = memchr(p, '\t', (size_t)(nl - p));
            if (tab == NULL || tab == p || !is_hex_digest(tab + 1, (size_t)(nl - tab - 1))) {
                wl_die(2, "chunk %zu, line %zu is not '<password>\\t<sha256 hex>'", t + 1, lines + 1);
            }
            lines++;
            p = nl + 1;
        }
        wl_write_all(parts[t].data, parts[t].len);
    }
    fprintf(stderr, "pwhash_collect: %zu digests from %zu chunks\n", lines, count);
    return 0;
}
