/* greet_1: prints "Hello, <name>!" for the name given as argv[1] or on stdin. */
#include "greet.h"

int main(int argc, char **argv) { return greet("Hello", argc, argv); }
