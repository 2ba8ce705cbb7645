/* Hostile: reads stdin after its end, forever (a loop of WASI calls), so only the timeout stops it. */
#include <unistd.h>

int main(void) {
    char buffer[16];
    for (;;) {
        if (read(0, buffer, sizeof buffer) < 0) return 1;
    }
}
