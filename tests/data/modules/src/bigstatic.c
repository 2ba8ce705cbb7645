/* A module whose *initial* memory (a 256 MiB static array) is over a 128 MB host's limit. */
#include <stdio.h>

static char big[256 << 20];

int main(int argc, char **argv) {
    big[argc] = 1;
    printf("%d\n", big[argc + (argv[0][0] & 1)]);
    return 0;
}
