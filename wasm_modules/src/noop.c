/* noop: does nothing and exits 0, so benchmarks measure Bxthre3's own overhead. */
int main(void) { return 0; }
