/* recurse: unbounded recursion, which must end in Wasm3's "stack overflow" trap.
 *
 * The call goes through a volatile function pointer and its result is used after the
 * call, so the compiler can neither prove the recursion infinite nor turn it into a
 * loop (tail-call or accumulator elimination). The frames hold no address-taken locals,
 * so they live on Wasm3's own stack rather than wasi-libc's shadow stack in memory.
 */
static int down(int depth);

static int (*volatile next)(int) = down;

static int down(int depth) { return next(depth + 1) + 1; }

int main(void) { return next(0); }
