/* What a task can learn of time and chance: clocks, random bytes, a timed sleep, a busy wait of argv[1] ms. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void show(const char *name, clockid_t clock) {
    struct timespec t;
    if (clock_gettime(clock, &t) != 0) {
        printf("%s: error\n", name);
        return;
    }
    printf("%s %lld.%09ld\n", name, (long long)t.tv_sec, t.tv_nsec);
}

static long long ms_between(struct timespec a, struct timespec b) {
    return (long long)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

int main(int argc, char **argv) {
    long wait_ms = argc > 1 ? atol(argv[1]) : 100;
    time_t now = time(NULL);
    struct tm *utc = gmtime(&now);
    printf("time %lld year %d\n", (long long)now, utc->tm_year + 1900);
    show("realtime", CLOCK_REALTIME);
    show("monotonic", CLOCK_MONOTONIC);
    show("process", CLOCK_PROCESS_CPUTIME_ID);
    show("thread", CLOCK_THREAD_CPUTIME_ID);
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("resolution %ld ns\n", res.tv_nsec);

    unsigned char bytes[40];
    if (getentropy(bytes, sizeof bytes) != 0) return 1;
    printf("getentropy ");
    for (size_t i = 0; i < sizeof bytes; i++) printf("%02x", bytes[i]);
    printf("\narc4random %08x %08x\n", arc4random(), arc4random());

    struct timespec before, after, nap = {0, 200 * 1000000L};
    clock_gettime(CLOCK_MONOTONIC, &before);
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &after);
    printf("slept %lld ms\n", ms_between(before, after));

    /* Busy-wait on the clock for argv[1] ms: must end even when the clock is logical. */
    struct timespec start, t;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long reads = 0;
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
        reads++;
    } while (ms_between(start, t) < wait_ms && reads < 100000000L);
    printf("waited %lld ms\n", ms_between(start, t));
    return 0;
}
