/* exit3: writes a message on stderr and exits 3 (a task's own, clean failure). */
#include <stdio.h>

int main(void) {
    fputs("something went wrong\n", stderr);
    return 3;
}
