/* Clocks and randomness: the values differ from run to run, so the program prints properties of them.
 * Usage: clocks IN_DIR OUT_DIR. WASI builds of clock() need -D_WASI_EMULATED_PROCESS_CLOCKS
 * -lwasi-emulated-process-clocks (wasi-libc says so when they are missing). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *yes(int ok) { return ok ? "yes" : "NO"; }

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static void clocks(void) {
    struct timespec a, b, r;
    printf("monotonic gettime ok: %s\n", yes(clock_gettime(CLOCK_MONOTONIC, &a) == 0));
    int monotonic = 1;
    for (int i = 0; i < 1000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (ns(b) < ns(a)) monotonic = 0;
        a = b;
    }
    printf("monotonic never goes back: %s\n", yes(monotonic));
    printf("monotonic res in (0, 1 ms]: %s\n",
           yes(clock_getres(CLOCK_MONOTONIC, &r) == 0 && ns(r) > 0 && ns(r) <= 1000000));
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    printf("realtime after 2024: %s\n", yes(real.tv_sec > 1704067200));
    printf("realtime before 2100: %s\n", yes(real.tv_sec < 4102444800));
    time_t t = time(NULL);
    printf("time() within 2 s of realtime: %s\n", yes(t - real.tv_sec >= -2 && t - real.tv_sec <= 2));
    struct timeval tv;
    gettimeofday(&tv, NULL);
    printf("gettimeofday within 2 s: %s, usec < 1e6: %s\n", yes(tv.tv_sec - real.tv_sec <= 2),
           yes(tv.tv_usec >= 0 && tv.tv_usec < 1000000));
    struct tm tm;
    time_t fixed = 1700000000;
    gmtime_r(&fixed, &tm);
    char text[64];
    strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S %j %a %b", &tm);
    printf("gmtime(1700000000) = %s\n", text);
    clock_t c0 = clock();
    volatile uint64_t spin = 0;
    for (int i = 0; i < 3000000; i++) spin += (uint64_t)i * i;
    clock_t c1 = clock();
    printf("clock() non-negative and non-decreasing: %s\n", yes(c0 >= 0 && c1 >= c0));
    printf("CLOCKS_PER_SEC at least 1e6: %s\n", yes(CLOCKS_PER_SEC >= 1000000)); /* glibc 1e6, wasi-libc 1e9 */
    const int64_t waits[] = {1000000, 15000000, 30000000};
    for (int i = 0; i < 3; i++) {
        struct timespec before, after, want = {0, (long)waits[i]};
        clock_gettime(CLOCK_MONOTONIC, &before);
        int rc = nanosleep(&want, NULL);
        clock_gettime(CLOCK_MONOTONIC, &after);
        int64_t slept = ns(after) - ns(before);
        printf("nanosleep %lld ms: rc %d, slept at least that: %s, under 2 s: %s\n", (long long)(waits[i] / 1000000),
               rc, yes(slept >= waits[i]), yes(slept < 2000000000));
    }
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    usleep(20000);
    clock_gettime(CLOCK_MONOTONIC, &after);
    printf("usleep 20 ms slept at least that: %s\n", yes(ns(after) - ns(before) >= 20000000));
}

static void randomness(void) {
    unsigned char a[300], b[256];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    printf("getentropy ok: %s %s\n", yes(getentropy(a, sizeof b) == 0), yes(getentropy(b, sizeof b) == 0));
    printf("getentropy(257) refused: %s\n", yes(getentropy(a, 257) != 0));
    printf("two draws differ: %s\n", yes(memcmp(a, b, sizeof b) != 0));
    int zeros = 0, distinct = 0, seen[256] = {0};
    for (size_t i = 0; i < sizeof b; i++) {
        zeros += a[i] == 0;
        if (!seen[a[i]]++) distinct++;
    }
    printf("not all zero: %s, at least 100 distinct byte values in 256: %s\n", yes(zeros < 32), yes(distinct >= 100));
    srand(12345);
    int in_range = 1;
    for (int i = 0; i < 1000; i++) {
        int r = rand();
        if (r < 0 || r > RAND_MAX) in_range = 0;
    }
    srand(12345);
    int r1 = rand();
    srand(12345);
    printf("rand in [0, RAND_MAX]: %s, reseeding repeats: %s, RAND_MAX >= 32767: %s\n", yes(in_range),
           yes(rand() == r1), yes(RAND_MAX >= 32767));
    srandom(99);
    long x = random();
    srandom(99);
    printf("random() repeats after srandom: %s\n", yes(random() == x));
}

int main(int argc, char **argv) {
    (void)argv;
    if (argc < 3) {
        fprintf(stderr, "usage: clocks IN_DIR OUT_DIR\n");
        return 2;
    }
    clocks();
    randomness();
    return 0;
}
