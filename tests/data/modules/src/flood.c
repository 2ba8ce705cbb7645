/* flood: prints forever, so the output cap must stop it (reason `output_limit`). */
#include <stdio.h>

int main(void) {
    for (;;) {
        fputs("flood flood flood flood flood flood flood flood flood flood flood\n", stdout);
    }
}
