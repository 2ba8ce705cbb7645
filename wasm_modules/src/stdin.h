/* Reads all of stdin into a malloc'd buffer (shared by the example modules that take
 * upstream outputs). Returns NULL when memory runs out; the caller says so and exits.
 */
#ifndef BXTHRE3_STDIN_H
#define BXTHRE3_STDIN_H

#include <stdio.h>
#include <stdlib.h>

static char *read_all_stdin(size_t *out_len) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return NULL;
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

#endif
