/* aggregate: the fan-in of a DAG. Prints each input on its own line.
 *
 * Literal inputs (argv[1..]) come first, one per line. Then stdin, which holds the
 * upstream outputs concatenated, is split into parts using BXTHRE3_INPUT_SIZES (the
 * comma-separated byte length of each part); each part is printed with its trailing
 * newlines stripped, followed by exactly one newline. Without the variable all of stdin
 * is one part; empty stdin has no parts. Bytes beyond the listed sizes form one last
 * part, so nothing the upstreams wrote is silently dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stdin.h"

static void print_part(const char *part, size_t len) {
    while (len > 0 && (part[len - 1] == '\n' || part[len - 1] == '\r')) {
        len--;
    }
    fwrite(part, 1, len, stdout);
    putchar('\n');
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        puts(argv[i]);
    }

    size_t total;
    char *data = read_all_stdin(&total);
    if (data == NULL) {
        fputs("aggregate: out of memory reading stdin\n", stderr);
        return 1;
    }

    size_t offset = 0;
    const char *sizes = getenv("BXTHRE3_INPUT_SIZES");
    if (sizes != NULL && *sizes != '\0') {
        const char *p = sizes;
        for (;;) {
            char *end;
            unsigned long long size = strtoull(p, &end, 10);
            if (end == p || (*end != ',' && *end != '\0')) {
                fputs("aggregate: BXTHRE3_INPUT_SIZES is not a comma-separated list of sizes\n", stderr);
                return 2;
            }
            if (size > total - offset) {
                fputs("aggregate: BXTHRE3_INPUT_SIZES lists more bytes than stdin holds\n", stderr);
                return 2;
            }
            print_part(data + offset, (size_t)size);
            offset += (size_t)size;
            if (*end == '\0') {
                break;
            }
            p = end + 1;
        }
    }
    if (offset < total) {
        print_part(data + offset, total - offset);
    }
    free(data);
    return 0;
}
