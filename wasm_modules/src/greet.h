/* Shared body of greet_1 and greet_2: only the greeting word differs.
 *
 * The name is argv[1] when a literal input is given, otherwise all of stdin (the
 * upstream task's output) with trailing whitespace stripped. Written with fwrite and
 * explicit lengths so a name holding NUL bytes is echoed intact.
 */
#ifndef BXTHRE3_GREET_H
#define BXTHRE3_GREET_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stdin.h"

static int is_trailing_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int greet(const char *greeting, int argc, char **argv) {
    const char *name;
    size_t len;
    char *owned = NULL;
    if (argc > 1) {
        name = argv[1];
        len = strlen(name);
    } else {
        owned = read_all_stdin(&len);
        if (owned == NULL) {
            fputs("greet: out of memory reading stdin\n", stderr);
            return 1;
        }
        name = owned;
    }
    while (len > 0 && is_trailing_space(name[len - 1])) {
        len--;
    }
    fputs(greeting, stdout);
    fputs(", ", stdout);
    fwrite(name, 1, len, stdout);
    fputs("!\n", stdout);
    free(owned);
    return 0;
}

#endif
