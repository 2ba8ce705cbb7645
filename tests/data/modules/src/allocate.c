/* Allocates argv[1] MiB, touches every page and prints a checksum: a well-behaved memory user.
 * The volatile accesses keep clang from deleting the allocations. */
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink;

int main(int argc, char **argv) {
    if (argc < 2) { fputs("usage: allocate MIB\n", stderr); return 2; }
    long mib = atol(argv[1]);
    unsigned long sum = 0;
    for (long i = 0; i < mib; i++) {
        volatile unsigned char *p = malloc(1 << 20);
        if (!p) { fprintf(stderr, "out of memory after %ld MiB\n", i); return 1; }
        sink = (void *)p;
        for (long j = 0; j < (1 << 20); j += 4096) { p[j] = (unsigned char)(i + j); sum += p[j]; }
    }
    printf("allocated %ld MiB, checksum %lu\n", mib, sum);
    return 0;
}
