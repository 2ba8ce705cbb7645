/* env_dump: prints what the module sees of its ABI: argv, the two Bxthre3 variables,
 * and the whole environment (to check it holds exactly what the host passed).
 *
 * Output, one item per line:
 *   argc=<n>, argv[<i>]=<arg>..., BXTHRE3_INPUT_SIZES=<value|(unset)>,
 *   BXTHRE3_TASK_ID=<value|(unset)>, environ=<n>, env[<i>]=<KEY=VALUE>...
 */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

static void print_var(const char *name) {
    const char *value = getenv(name);
    printf("%s=%s\n", name, value == NULL ? "(unset)" : value);
}

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
    }
    print_var("BXTHRE3_INPUT_SIZES");
    print_var("BXTHRE3_TASK_ID");
    int count = 0;
    while (environ[count] != NULL) {
        count++;
    }
    printf("environ=%d\n", count);
    for (int i = 0; i < count; i++) {
        printf("env[%d]=%s\n", i, environ[i]);
    }
    return 0;
}
