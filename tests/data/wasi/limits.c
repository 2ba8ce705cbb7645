/* Pushes the limits of /out: argv[1] = bytes N (one file of N bytes, with stdout too),
   files N (N empty files), names (too-long names and paths), listing N (N long names read back
   with readdir: many fd_readdir calls continuing from cookies), rmrf N (N files removed one by one
   while reading the directory, then the directory itself). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "errname.h"

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (!strcmp(mode, "bytes")) {
        printf("0123456789");                     /* 10 bytes of stdout count too */
        fflush(stdout);
        FILE *f = fopen("/out/big", "w");
        for (long i = 0; i < n; i++) fputc('x', f);
        fclose(f);
        return 0;
    }
    if (!strcmp(mode, "files")) {
        char name[64];
        for (long i = 0; i < n; i++) {
            snprintf(name, sizeof name, "/out/f%ld", i);
            close(open(name, O_CREAT | O_WRONLY, 0644));
        }
        return 0;
    }
    if (!strcmp(mode, "listing")) {
        char name[160];
        for (long i = 0; i < n; i++) {
            snprintf(name, sizeof name, "/out/%0120ld", i);
            close(open(name, O_CREAT | O_WRONLY, 0644));
        }
        DIR *d = opendir("/out");
        long count = 0, sum = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            count++;
            sum += atol(e->d_name);
        }
        closedir(d);
        printf("listed %ld, sum %ld\n", count, sum);
        return 0;
    }
    if (!strcmp(mode, "rmrf")) {
        char name[200];
        mkdir("/out/tree", 0755);
        for (long i = 0; i < n; i++) {
            snprintf(name, sizeof name, "/out/tree/%0120ld", i);
            close(open(name, O_CREAT | O_WRONLY, 0644));
        }
        close(open("/out/keep", O_CREAT | O_WRONLY, 0644));
        DIR *d = opendir("/out/tree");
        long removed = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(name, sizeof name, "/out/tree/%s", e->d_name);
            if (unlink(name) == 0) removed++;
        }
        closedir(d);
        errno = 0;
        printf("removed %ld, rmdir: %s\n", removed, rmdir("/out/tree") ? errname(errno) : "ok");
        return 0;
    }
    if (!strcmp(mode, "names")) {
        char path[2100] = "/out/";
        memset(path + 5, 'n', 256);
        errno = 0;
        printf("256-byte name: %s\n", open(path, O_CREAT | O_WRONLY, 0644) < 0 ? errname(errno) : "ok");
        path[5 + 255] = 0;
        errno = 0;
        printf("255-byte name: %s\n", open(path, O_CREAT | O_WRONLY, 0644) < 0 ? errname(errno) : "ok");
        /* Nested directories until the path passes 1024 bytes. */
        strcpy(path, "/out");
        int depth = 0;
        for (;;) {
            strcat(path, "/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
            errno = 0;
            if (mkdir(path, 0755) < 0) break;
            depth++;
        }
        printf("mkdir stopped at depth %d: %s\n", depth, errname(errno));
        return 0;
    }
    return 2;
}
