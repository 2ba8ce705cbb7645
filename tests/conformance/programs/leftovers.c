/* What a run leaves behind in an instance, printed: a static counter, the shadow stack pointer (the
 * __stack_pointer global), the heap, memory's size and a string kept from the last run. Run in a
 * fresh instance every line is the same whatever ran before; tests/conformance/test_kept_instances.py
 * checks that a kept Wasm3 instance prints exactly that too.
 *
 * Like the other programs its first two arguments are the in and out directories (unused here):
 *   leftovers IN OUT              print and return 0
 *   leftovers IN OUT exit N       leave with exit(N) from ten frames deep (the stack pointer is not restored)
 *   leftovers IN OUT grow BYTES   also allocate and touch BYTES (memory grows)
 *   leftovers IN OUT trap         trap after printing
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int counter;
static char *remembered;

static int exit_from_deep(int depth, int code) {
    volatile char pad[256];
    pad[0] = (char)depth;
    if (depth == 0) exit(code);
    return exit_from_deep(depth - 1, code) + pad[0];
}

int main(int argc, char **argv) {
    int local = 0;
    if (argc < 3) return 64;
    argc -= 2;
    argv += 2;
    counter++;
    unsigned char *heap = malloc(64);
    printf("counter=%d stack=%p heap=%p pages=%zu remembered=%s\n", counter, (void *)&local, (void *)heap,
           (size_t)__builtin_wasm_memory_size(0), remembered ? remembered : "(none)");
    remembered = strdup(argc > 1 ? argv[1] : "-");
    if (argc > 2 && strcmp(argv[1], "grow") == 0) {
        size_t bytes = strtoul(argv[2], 0, 10);
        unsigned char *big = malloc(bytes);
        if (big == NULL) return 2;
        memset(big, 0x5a, bytes);
        printf("grown to pages=%zu last byte %d\n", (size_t)__builtin_wasm_memory_size(0), big[bytes - 1]);
        free(big);
    }
    if (argc > 2 && strcmp(argv[1], "exit") == 0) return exit_from_deep(10, atoi(argv[2]));
    if (argc > 1 && strcmp(argv[1], "trap") == 0) __builtin_trap();
    return 0;
}
