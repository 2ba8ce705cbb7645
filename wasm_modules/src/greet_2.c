/* greet_2: prints "Hola, <name>!" for the name given as argv[1] or on stdin. */
#include "greet.h"

int main(int argc, char **argv) { return greet("Hola", argc, argv); }
