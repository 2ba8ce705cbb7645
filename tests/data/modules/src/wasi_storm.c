/* Makes 2 * argv[1] WASI calls: reads the clock and writes one byte of stdout, argv[1] times each.
 * An engine whose host calls leak memory shows it in the executor's resident size. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 1000;
    struct timespec now;
    char byte = 'x';
    for (long i = 0; i < count; i++) {
        if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return 1;
        if (write(1, &byte, 1) != 1) return 2;
    }
    return 0;
}
