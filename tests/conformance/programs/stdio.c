/* stdio buffering, printf of floats and integers, qsort, getenv, argv and stdin.
 * Usage: stdio IN_DIR OUT_DIR [ARGS...]; the directories are unused here (every program takes them). */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct rec { double key; int index; };

static int by_key(const void *a, const void *b) {
    const struct rec *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return (x->index > y->index) - (x->index < y->index); /* a total order: qsort is not stable */
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void floats(void) {
    static const double values[] = {
        0.0, -0.0, 1.0, -1.5, 0.1, 1.0 / 3.0, 2.0 / 3.0, 3.14159265358979323846, 1e-7, 123456789.125,
        1e21, 1e300, -2.5e-300, DBL_MAX, DBL_MIN, DBL_EPSILON, 5e-324, 0.5, 1.5, 2.5, 1e15 + 0.3,
        9007199254740993.0, 100.0, 1234.5678,
    };
    const char *formats[] = {"%f", "%.0f", "%.1f", "%.17g", "%g", "%e", "%.3e", "%10.4f", "%-12.2e|", "%+.5g",
                             "%#.0f", "%#g", "%G", "%E", "%a"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
            if (strcmp(formats[f], "%a") == 0 && fabs(values[i]) < DBL_MIN && values[i] != 0.0)
                continue; /* subnormals in %a: glibc and musl normalise differently, both correct */
            if (strcmp(formats[f], "%f") == 0 && fabs(values[i]) > 1e25) continue;
            printf(formats[f], values[i]);
            putchar(' ');
        }
        putchar('\n');
    }
    printf("%f %f %f %F\n", INFINITY, -INFINITY, NAN == NAN ? 0.0 : 1.0, 2.0);
    printf("%.3f %e %g\n", (double)1.0f / 3.0f, (double)FLT_MAX, (double)FLT_MIN);
    printf("%s %s\n", isinf(INFINITY) ? "inf" : "?", isnan(NAN) ? "nan" : "?");
    printf("sqrt %.17g exp %.17g log %.17g sin %.17g pow %.17g\n", sqrt(2.0), exp(1.0), log(10.0), sin(1.0),
           pow(2.0, 0.5));
    printf("strtod %.17g %.17g %.17g\n", strtod("0.1", NULL), strtod("1e-310", NULL), strtod("-123.456e7", NULL));
    char buf[64];
    snprintf(buf, sizeof buf, "%.20f", 0.1);
    printf("snprintf %s %d\n", buf, snprintf(NULL, 0, "%g", 1e100));
}

static void integers(void) {
    printf("%d %i %u %x %X %o %#x %#o %5d|%-5d|%05d\n", -42, 42, 42u, 255u, 255u, 8u, 255u, 8u, 7, 7, 7);
    printf("%lld %llu %" PRId64 " %" PRIu64 " %" PRIx64 "\n", LLONG_MIN, ULLONG_MAX, INT64_MAX, UINT64_MAX,
           (uint64_t)0xdeadbeefcafef00dULL);
    printf("%hhd %hd %ld %zu %td %jd %c%c\n", (signed char)-1, (short)-300, (long)-123456789, sizeof(int),
           (ptrdiff_t)-3, (intmax_t)12345, 'o', 'k');
    printf("%s|%10s|%-10s|%.2s|%%\n", "str", "right", "left", "truncated");
    printf("%d\n", printf("%s", "counted:") );
}

static void sorting(void) {
    enum { N = 2000 };
    static struct rec recs[N];
    uint32_t x = 2463534242u;
    for (int i = 0; i < N; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5; /* xorshift32: the same sequence everywhere */
        recs[i].key = (double)(x % 500) / 7.0 - 30.0;
        recs[i].index = i;
    }
    qsort(recs, N, sizeof recs[0], by_key);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < N; i++) h = (h ^ (uint64_t)recs[i].index) * 1099511628211ull;
    printf("qsort first %.6f/%d last %.6f/%d order-hash %016" PRIx64 "\n", recs[0].key, recs[0].index,
           recs[N - 1].key, recs[N - 1].index, h);
    const char *words[] = {"pear", "apple", "fig", "banana", "", "Zebra", "apple2", "\xc3\xa9t\xc3\xa9"};
    qsort(words, sizeof words / sizeof words[0], sizeof words[0], by_string);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) printf("[%s]", words[i]);
    putchar('\n');
}

static void environment(int argc, char **argv) {
    printf("argc %d\n", argc - 1);
    for (int i = 3; i < argc; i++) printf("argv[%d] %zu [%s]\n", i - 2, strlen(argv[i]), argv[i]);
    const char *names[] = {"CONF_GREETING", "CONF_EMPTY", "CONF_UTF8", "CONF_MISSING", "CONF_EQUALS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        printf("getenv %s %s%s%s\n", names[i], v ? "[" : "NULL", v ? v : "", v ? "]" : "");
    }
    int n = 0;
    while (environ[n]) n++;
    char **sorted = malloc((size_t)n * sizeof *sorted);
    memcpy(sorted, environ, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_string);
    printf("environ %d\n", n);
    for (int i = 0; i < n; i++) printf("  %s\n", sorted[i]);
    free(sorted);
}

static void standard_input(void) {
    char line[256];
    int lines = 0;
    size_t bytes = 0;
    while (fgets(line, sizeof line, stdin)) {
        lines++;
        bytes += strlen(line);
        if (lines <= 3) printf("stdin line %d: %s", lines, line);
    }
    printf("stdin %d lines %zu bytes eof=%d\n", lines, bytes, feof(stdin));
}

static void buffering(void) {
    static char full[32];
    fflush(stdout);
    setvbuf(stdout, full, _IOFBF, sizeof full); /* a tiny full buffer: many partial flushes */
    for (int i = 0; i < 50; i++) printf("full-%02d%s", i, i % 7 == 6 ? "\n" : " ");
    fputs("\n", stdout);
    fprintf(stderr, "stderr between buffered stdout writes\n");
    fflush(stdout);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 5; i++) {
        fputs("line-buffered ", stdout);
        fputc('0' + i, stdout);
        fputc('\n', stdout);
    }
    fflush(stdout);
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < 20; i++) putchar('a' + i);
    puts("");
    const char bin[] = {'b', 'i', 'n', 0, (char)0x80, (char)0xff, (char)0xfe, 0, '\n'};
    fwrite(bin, 1, sizeof bin, stdout);
    setvbuf(stdout, NULL, _IOFBF, 4096);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: stdio IN_DIR OUT_DIR [ARGS...]\n");
        return 2;
    }
    puts("== floats");
    floats();
    puts("== integers");
    integers();
    puts("== sorting");
    sorting();
    puts("== environment");
    environment(argc, argv);
    puts("== stdin");
    standard_input();
    puts("== buffering");
    buffering();
    printf("left in the buffer: flushed by exit(%d)\n", argc > 3 ? 3 : 0);
    fprintf(stderr, "stderr done\n");
    exit(argc > 3 ? 3 : 0);
}
