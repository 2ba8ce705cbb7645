/* A WASI reactor (library): exports `foo` and `_initialize` but no `_start`. */
__attribute__((export_name("foo"))) int foo(int x) {
    return x + 1;
}
