/* Allocates 1 MiB blocks and touches them until malloc fails; reports how far it got.
 * With argv[1] == "abort" it calls abort() on failure instead (a program that dies of ENOMEM). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  size_t mib = 0;
  for (;;) {
    char *p = malloc(1 << 20);
    if (!p) break;
    memset(p, 1, 1 << 20);
    mib++;
  }
  if (argc > 1 && !strcmp(argv[1], "abort")) abort();
  printf("ENOMEM after %zu MiB\n", mib);
  return 0;
}
