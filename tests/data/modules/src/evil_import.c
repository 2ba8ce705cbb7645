/* Hostile: imports a function outside the WASI subset. */
__attribute__((import_module("env"), import_name("launch_missiles"))) void launch_missiles(void);

int main(void) {
    launch_missiles();
    return 0;
}
