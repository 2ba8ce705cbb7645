"""WebAssembly in the executor child: the ABI, module inspection and rewriting, WASI, and the two engines."""
