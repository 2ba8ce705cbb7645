/* A WASI command that also imports a host function the engine does not provide. */
__attribute__((import_module("env"), import_name("evil"))) void evil(void);

int main(void) {
    evil();
    return 0;
}
