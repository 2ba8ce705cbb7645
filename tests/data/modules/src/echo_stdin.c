/* echo_stdin: copies stdin to stdout byte for byte (binary round trips, NUL bytes). */
#include <unistd.h>

int main(void) {
    static char buf[65536];
    for (;;) {
        ssize_t got = read(0, buf, sizeof buf);
        if (got == 0) {
            return 0;
        }
        if (got < 0) {
            return 1;
        }
        ssize_t done = 0;
        while (done < got) {
            ssize_t put = write(1, buf + done, (size_t)(got - done));
            if (put <= 0) {
                return 1;
            }
            done += put;
        }
    }
}
