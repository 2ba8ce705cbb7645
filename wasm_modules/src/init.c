/* init: the seed of a DAG. Prints its literal inputs (argv[1..]) joined by one space.
 *
 * `init Bxthre3` prints "Bxthre3\n", which greet_1 and greet_2 read on stdin.
 */
#include <stdio.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (i > 1) {
            putchar(' ');
        }
        fputs(argv[i], stdout);
    }
    putchar('\n');
    return 0;
}
