/* trap: prints a line, flushes it, then executes `unreachable`.
 *
 * Checks that a trap is reported as reason `trap` and that output written before the
 * trap is still returned.
 */
#include <stdio.h>

int main(void) {
    puts("about to trap");
    fflush(stdout);
    __builtin_trap();
}
