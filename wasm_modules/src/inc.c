/* inc: prints 1 + the sum of every integer in its literal inputs and on stdin.
 *
 * Meant for chain DAGs: a chain of N inc tasks fed nothing outputs N, so the result
 * checks that every link ran exactly once and in order. Tokens are whitespace
 * separated; tokens that are not integers are ignored.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static long long sum = 0;

static void add_token(const char *token) {
    char *end;
    errno = 0;
    long long value = strtoll(token, &end, 10);
    if (end != token && *end == '\0' && errno == 0) {
        sum += value;
    }
}

/* Splits a NUL-terminated string on whitespace and adds each integer token. */
static void add_all(char *text) {
    char *p = text;
    for (;;) {
        while (*p != '\0' && isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0') {
            return;
        }
        char *start = p;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            p++;
        }
        char saved = *p;
        *p = '\0';
        add_token(start);
        *p = saved;
    }
}

/* Prints a number and a newline; printf would pull ~20 KB of float formatting in. */
static void print_integer(long long value) {
    char digits[24];
    int n = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) {
        putchar('-');
    }
    while (n > 0) {
        putchar(digits[--n]);
    }
    putchar('\n');
}

/* Reads all of stdin into a NUL-terminated malloc'd buffer; NULL when out of memory. */
static char *read_all_stdin(void) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, stdin);
        len += got;
        if (got == 0) {
            break;
        }
    }
    buf[len] = '\0';
    return buf;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        add_all(argv[i]);
    }
    char *input = read_all_stdin();
    if (input == NULL) {
        fputs("inc: out of memory reading stdin\n", stderr);
        return 1;
    }
    add_all(input);
    free(input);
    print_integer(sum + 1);
    return 0;
}
