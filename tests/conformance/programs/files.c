/* fopen on the input and output directories, large reads and writes, binary data, qsort of lines.
 * Usage: files IN_DIR OUT_DIR. Reads IN_DIR/text.txt and IN_DIR/big.bin (a few MB); writes OUT_DIR/... */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_dir, *out_dir;

static FILE *open_in(const char *name, const char *mode) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", in_dir, name);
    return fopen(path, mode);
}

static FILE *open_out(const char *name, const char *mode) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    return fopen(path, mode);
}

static uint64_t fnv(const unsigned char *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int by_line(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void text(void) {
    FILE *f = open_in("text.txt", "r");
    if (!f) { perror("text.txt"); exit(1); }
    char **lines = NULL, buf[1024];
    size_t n = 0;
    while (fgets(buf, sizeof buf, f)) {
        lines = realloc(lines, (n + 1) * sizeof *lines);
        lines[n++] = strdup(buf);
    }
    fclose(f);
    qsort(lines, n, sizeof *lines, by_line);
    FILE *out = open_out("sorted.txt", "w");
    for (size_t i = 0; i < n; i++) {
        fputs(lines[i], out);
        free(lines[i]);
    }
    fprintf(out, "-- %zu lines\n", n);
    fclose(out);
    free(lines);
    printf("text: %zu lines sorted\n", n);
}

static void big(void) {
    FILE *f = open_in("big.bin", "rb");
    if (!f) { perror("big.bin"); exit(1); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *data = malloc((size_t)size + 1);
    size_t got = fread(data, 1, (size_t)size + 1, f); /* one large read, asking for one byte too many */
    printf("big: size %ld read %zu eof %d fnv %016" PRIx64 "\n", size, got, feof(f), fnv(data, got, 14695981039346656037ull));
    /* the same file again in odd-sized chunks */
    rewind(f);
    static unsigned char chunk[65537]; /* static: a WebAssembly stack is 64 KiB by default */
    uint64_t h = 14695981039346656037ull;
    size_t total = 0, k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) { h = fnv(chunk, k, h); total += k; }
    printf("big: chunked %zu fnv %016" PRIx64 "\n", total, h);
    fclose(f);
    unsigned long histogram[256] = {0};
    for (size_t i = 0; i < got; i++) histogram[data[i]]++;
    printf("big: count[0]=%lu count[0x80]=%lu count[0xff]=%lu\n", histogram[0], histogram[0x80], histogram[0xff]);
    /* one large write of a transformed copy, then appended pieces */
    for (size_t i = 0; i < got; i++) data[i] ^= (unsigned char)(i * 7 + 0x5a);
    FILE *out = open_out("big_xor.bin", "wb");
    size_t put = fwrite(data, 1, got, out);
    fclose(out);
    out = open_out("big_xor.bin", "ab");
    for (int i = 0; i < 300; i++) fwrite(data + i * 1000, 1, 997, out);
    fclose(out);
    out = open_out("big_xor.bin", "rb");
    fseek(out, 0, SEEK_END);
    printf("big: wrote %zu, file now %ld\n", put, ftell(out));
    fclose(out);
    /* a large binary write to stdout: every byte value, NULs included */
    for (size_t i = 0; i < 3 * 65536 + 17; i++) putchar((int)((i * 31 + (i >> 8)) & 0xff));
    putchar('\n');
    free(data);
}

static void binary_and_modes(void) {
    FILE *out = open_out("binary.bin", "wb");
    for (int i = 0; i < 256; i++) fputc(i, out);
    fputc(0, out);
    fputc(0, out);
    fclose(out);
    out = open_out("binary.bin", "r+b");
    fseek(out, 10, SEEK_SET);
    fwrite("\0\0\x80\xff", 1, 4, out);
    fseek(out, -2, SEEK_END);
    fputs("END", out);
    fclose(out);
    out = open_out("binary.bin", "rb");
    unsigned char buf[300];
    size_t n = fread(buf, 1, sizeof buf, out);
    fclose(out);
    printf("binary: %zu bytes, [10..14) %02x %02x %02x %02x, last %c%c%c, fnv %016" PRIx64 "\n", n, buf[10], buf[11],
           buf[12], buf[13], buf[n - 3], buf[n - 2], buf[n - 1], fnv(buf, n, 14695981039346656037ull));
    FILE *missing = open_in("no-such-file", "r");
    printf("missing input: %s\n", missing ? "opened?!" : "NULL");
    FILE *w = open_out("w_then_r.txt", "w+");
    fprintf(w, "%s %d %.2f\n", "written", 42, 2.5);
    rewind(w);
    char word[32];
    int i;
    double d;
    int fields = fscanf(w, "%31s %d %lf", word, &i, &d);
    printf("fscanf: %d fields: %s %d %.2f\n", fields, word, i, d);
    fclose(w);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: files IN_DIR OUT_DIR\n");
        return 2;
    }
    in_dir = argv[1];
    out_dir = argv[2];
    text();
    binary_and_modes();
    big();
    fprintf(stderr, "files: done\n");
    return 0;
}
