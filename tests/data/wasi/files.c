/* Files in, files out: what a task does with /in and /out through plain libc. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "errname.h"

#define CHECK(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s: %s\n", label, r_ < 0 ? errname(errno) : "ok"); } while (0)

static void cat(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { printf("cat %s: %s\n", path, errname(errno)); return; }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    printf("cat %s: [%s]\n", path, buf);
    fclose(f);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path) {
    DIR *d = opendir(path);
    if (!d) { printf("ls %s: %s\n", path, errname(errno)); return; }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    printf("ls %s:", path);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

int main(void) {
    /* Reading /in, by absolute and relative path. */
    cat("/in/greeting.txt");
    cat("in/sub/data.txt");
    struct stat st;
    CHECK("stat /in/sub/data.txt", stat("/in/sub/data.txt", &st));
    printf("size %lld dir %d reg %d\n", (long long)st.st_size, S_ISDIR(st.st_mode), S_ISREG(st.st_mode));
    FILE *in = fopen("/in/greeting.txt", "r");
    fseek(in, -3, SEEK_END);
    printf("ftell %ld getc %c\n", ftell(in), fgetc(in));
    fclose(in);
    list("/in");

    /* /in is read-only. */
    CHECK("fopen /in/new w", fopen("/in/new", "w") ? 0 : -1);
    CHECK("mkdir /in/d", mkdir("/in/d", 0755));
    CHECK("unlink /in/greeting.txt", unlink("/in/greeting.txt"));
    int ro = open("/in/greeting.txt", O_RDWR);
    CHECK("write to /in file", write(ro, "x", 1));
    close(ro);

    /* Create, write, read back, seek, tell. */
    FILE *f = fopen("/out/a.txt", "w");
    fputs("hello", f);
    fclose(f);
    f = fopen("/out/a.txt", "r+");
    fseek(f, 1, SEEK_SET);
    fputc('E', f);
    printf("ftell after E: %ld\n", ftell(f));
    fseek(f, 0, SEEK_END);
    printf("ftell at end: %ld\n", ftell(f));
    fclose(f);
    cat("/out/a.txt");

    /* Append, via fopen "a" and via fcntl O_APPEND. */
    f = fopen("/out/a.txt", "a");
    fputs(" world", f);
    fclose(f);
    int fd = open("/out/a.txt", O_WRONLY);
    fcntl(fd, F_SETFL, O_APPEND);
    write(fd, "!", 1);
    printf("fcntl flags append: %d\n", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    close(fd);
    cat("/out/a.txt");

    /* pread/pwrite, truncate, sparse extension. */
    fd = open("/out/a.txt", O_RDWR);
    char two[3] = {0};
    pread(fd, two, 2, 6);
    printf("pread: [%s] pos %lld\n", two, (long long)lseek(fd, 0, SEEK_CUR));
    pwrite(fd, "W", 1, 6);
    CHECK("ftruncate 7", ftruncate(fd, 7));
    lseek(fd, 9, SEEK_SET);
    write(fd, "Z", 1);
    fstat(fd, &st);
    printf("size after sparse write: %lld\n", (long long)st.st_size);
    close(fd);
    CHECK("truncate 5", truncate("/out/a.txt", 5));
    cat("/out/a.txt");

    /* O_CREAT|O_EXCL, O_DIRECTORY, O_TRUNC. */
    CHECK("creat excl", open("/out/x", O_CREAT | O_EXCL | O_WRONLY, 0644));
    CHECK("creat excl again", open("/out/x", O_CREAT | O_EXCL | O_WRONLY, 0644));
    CHECK("O_DIRECTORY on file", open("/out/x", O_RDONLY | O_DIRECTORY));
    CHECK("open missing", open("/out/missing", O_RDONLY));
    fd = open("/out/a.txt", O_WRONLY | O_TRUNC);
    close(fd);
    fstat(fd, &st);
    CHECK("stat a.txt", stat("/out/a.txt", &st));
    printf("size after O_TRUNC: %lld\n", (long long)st.st_size);

    /* Directories, rename across them, unlink, rmdir. */
    CHECK("mkdir d", mkdir("/out/d", 0755));
    CHECK("mkdir d again", mkdir("/out/d", 0755));
    CHECK("mkdir d/e", mkdir("/out/d/e", 0755));
    f = fopen("/out/d/e/deep.txt", "w");
    fputs("deep", f);
    fclose(f);
    CHECK("rename x -> d/moved", rename("/out/x", "/out/d/moved"));
    CHECK("rename a.txt -> d/e/a.txt", rename("out/a.txt", "out/d/e/a.txt"));
    CHECK("rmdir d (not empty)", rmdir("/out/d"));
    CHECK("unlink d/moved", unlink("/out/d/moved"));
    CHECK("unlink d (a dir)", unlink("/out/d"));
    CHECK("rmdir missing", rmdir("/out/nope"));
    CHECK("mkdir t", mkdir("/out/t", 0755));
    CHECK("rmdir t", rmdir("/out/t"));
    list("/out");
    list("/out/d/e");
    CHECK("stat d/e/deep.txt", stat("/out/d/e/deep.txt", &st));
    printf("deep size %lld nlink %d\n", (long long)st.st_size, (int)st.st_nlink);

    /* No escape, no links. */
    CHECK("open /out/../etc/passwd", open("/out/../etc/passwd", O_RDONLY));
    CHECK("open /etc/passwd", open("/etc/passwd", O_RDONLY));
    CHECK("symlink", symlink("a", "/out/link"));
    CHECK("link", link("/out/d/e/deep.txt", "/out/hard"));
    char target[16];
    CHECK("readlink", readlink("/out/d/e/deep.txt", target, sizeof target));

    /* stdio is a pipe. */
    CHECK("lseek stdout", lseek(1, 0, SEEK_CUR));
    printf("isatty %d %d %d\n", isatty(0), isatty(1), isatty(2));
    return 0;
}
