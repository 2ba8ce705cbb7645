/* Hostile: allocates 1 MiB blocks forever, touching each, and ignores malloc failures. */
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(void) {
    for (;;) {
        char *p = malloc(1 << 20);
        if (p) memset(p, 0xAB, 1 << 20);
        sink = p;
    }
}
