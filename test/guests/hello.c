/* Hello world in C: built for glibc and musl, static and static-PIE. */
#include <stdio.h>
int main(int argc, char **argv) {
  printf("hello from %s (argc=%d)\n", argc > 0 ? argv[0] : "?", argc);
  fprintf(stderr, "to stderr\n");
  return 7;
}
