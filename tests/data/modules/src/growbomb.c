/* Hostile: calls memory.grow directly in a loop and ignores the -1 it gets when refused. */
static volatile int sink;

int main(void) {
    for (;;) sink = __builtin_wasm_memory_grow(0, 16);
}
