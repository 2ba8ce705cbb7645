/* Hostile: integer division by zero, which traps in WebAssembly. */
#include <stdio.h>

static volatile int zero = 0;

int main(void) {
    printf("%d\n", 42 / zero);
    return 0;
}
