/* spin: loops forever without any WASI call, so only killing the executor stops it.
 *
 * The counter is volatile so the compiler keeps the loop's memory traffic instead of
 * deleting the loop body.
 */
volatile unsigned long long spins = 0;

int main(void) {
    for (;;) {
        spins++;
    }
}
