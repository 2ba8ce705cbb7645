/* Sleeps argv[1] milliseconds with usleep, nanosleep or sleep (argv[2]), then says so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 0;
    const char *how = argc > 2 ? argv[2] : "usleep";
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (!strcmp(how, "nanosleep")) {
        struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&t, NULL);
    } else if (!strcmp(how, "sleep")) {
        sleep((unsigned)(ms / 1000));
    } else {
        usleep((useconds_t)(ms * 1000));
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    long slept = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
    printf("slept at least %ld ms: %s\n", ms, slept >= ms ? "yes" : "no");
    return 0;
}
