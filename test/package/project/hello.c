/* A static program for `npx farcall run`. */
#include <stdio.h>

int main(int argc, char **argv) {
  printf("hello from a VM, %s\n", argc > 1 ? argv[1] : "nobody");
  return 0;
}
