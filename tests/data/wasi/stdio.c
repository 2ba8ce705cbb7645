/* stdio behaves as a native program's with stdout to a pipe: fully buffered, not a tty, not seekable. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "errname.h"

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "mixed")) {
        /* Raw writes overtake buffered lines unless stdout is a tty. musl (wasi-libc) decides at its
           first flush, so the first line goes out at once; glibc decides before: compare with musl. */
        printf("buffered 1\n");
        printf("buffered 2\n");
        write(1, "raw\n", 4);
        printf("buffered 3\n");
        fflush(stdout);
        write(1, "after flush\n", 12);
        struct stat st;
        printf("fstat stdout %d, a character device %d\n", fstat(1, &st), S_ISCHR(st.st_mode));
        return 0;
    }
    for (int i = 0; i < 3; i++) printf("line %d\n", i);
    printf("isatty %d %d %d\n", isatty(0), isatty(1), isatty(2));
    errno = 0;
    long r = lseek(0, 0, SEEK_CUR);
    printf("lseek stdin %ld %s\n", r, errname(errno));
    errno = 0;
    r = lseek(1, 5, SEEK_SET);
    printf("lseek stdout %ld %s\n", r, errname(errno));
    char line[64];
    while (fgets(line, sizeof line, stdin)) printf("stdin: %s", line);
    printf("eof %d\n", feof(stdin));
    printf("sched_yield %d\n", sched_yield());
    fprintf(stderr, "to stderr\n");
    return 0;
}
