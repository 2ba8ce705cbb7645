/* inc: prints 1 + the sum of every integer in its literal inputs and on stdin.
 *
 * Meant for chain DAGs: a chain of N inc tasks fed nothing outputs N, so the result
 * checks that every link ran exactly once and in order. Tokens are whitespace
 * separated; tokens that are not integers (or longer than 64 bytes) are ignored.
 *
 * Written to be as cheap to run as a trivial task can be: no stdio, no malloc,
 * `main(void)` so libc does not build argv on the heap, and buffers on the stack so
 * linear memory stays at its minimum. Wasm3 compiles every function a run touches on
 * every run and sets up all of linear memory: printf and malloc alone cost ~0.6 ms per
 * run, 64 KiB of static buffers ~0.2 ms, strtoll ~0.1 ms.
 */
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <wasi/api.h>

#define TOKEN_MAX 64
#define ARGS_BYTES_MAX 16384
#define ARGS_MAX 1024

static long long sum = 0;
static char token[TOKEN_MAX];
static size_t token_len = 0;
static int token_too_long = 0;

/* Parses a whole token as a base-10 integer, as strtoll would; 0 when it is not one or overflows. */
static int parse_integer(const char *text, size_t len, long long *out) {
    size_t i = 0;
    int negative = 0;
    if (len > 0 && (text[0] == '+' || text[0] == '-')) {
        negative = text[0] == '-';
        i = 1;
    }
    if (i == len) {
        return 0;
    }
    unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    unsigned long long magnitude = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return 0;
        }
        unsigned digit = (unsigned)(text[i] - '0');
        if (magnitude > (limit - digit) / 10) {
            return 0;
        }
        magnitude = magnitude * 10 + digit;
    }
    *out = negative ? (long long)(0ULL - magnitude) : (long long)magnitude;
    return 1;
}

static void end_token(void) {
    long long value;
    if (token_len > 0 && !token_too_long && parse_integer(token, token_len, &value)) {
        sum += value;
    }
    token_len = 0;
    token_too_long = 0;
}

/* Feeds text through the tokenizer; tokens may span calls (stdin arrives in chunks). */
static void feed(const char *text, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || (c >= '\t' && c <= '\r') || c == '\0') {
            end_token();
        } else if (token_len < TOKEN_MAX) {
            token[token_len++] = (char)c;
        } else {
            token_too_long = 1;
        }
    }
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fail(const char *message, size_t len) {
    write_all(2, message, len);
    return 2;
}

/* Adds the integers in argv[1..], read straight from WASI into buffers on the stack. */
static int add_arguments(void) {
    __wasi_size_t argc = 0, size = 0;
    if (__wasi_args_sizes_get(&argc, &size) != 0) {
        return fail("inc: cannot read arguments\n", 27);
    }
    if (argc > ARGS_MAX || size > ARGS_BYTES_MAX) {
        return fail("inc: arguments too long\n", 24);
    }
    char buffer[size + 1];
    char *argv[argc + 1];
    if (__wasi_args_get((uint8_t **)argv, (uint8_t *)buffer) != 0) {
        return fail("inc: cannot read arguments\n", 27);
    }
    for (__wasi_size_t i = 1; i < argc; i++) {
        const char *arg = argv[i];
        size_t len = 0;
        while (arg[len] != '\0') {
            len++;
        }
        feed(arg, len);
        end_token();
    }
    return 0;
}

static int print_integer(long long value) {
    char text[24];
    int n = (int)sizeof text;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    text[--n] = '\n';
    do {
        text[--n] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) {
        text[--n] = '-';
    }
    return write_all(1, text + n, sizeof text - (size_t)n);
}

int main(void) {
    int status = add_arguments();
    if (status != 0) {
        return status;
    }
    char chunk[4096];
    for (;;) {
        ssize_t got = read(0, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        feed(chunk, (size_t)got);
    }
    end_token();
    return print_integer(sum + 1) == 0 ? 0 : 1;
}
