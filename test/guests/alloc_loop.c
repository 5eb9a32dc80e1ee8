/* Allocates 1 MiB blocks and touches them until malloc fails; reports how far it got.
 * With argv[1] == "abort" it calls abort() on failure instead (a program that dies of ENOMEM).
 * With argv[1] == "reserve" it first reserves 512 MiB PROT_NONE and maps 256 MiB it touches
 * one page of (what Go's runtime does at start), which must not count against the limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
  size_t mib = 0;
  if (argc > 1 && !strcmp(argv[1], "reserve")) {
    char *r = mmap(NULL, 512u << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *w = mmap(NULL, 256u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED || w == MAP_FAILED) return 2;
    if (mprotect(r, 1 << 20, PROT_READ | PROT_WRITE)) return 3;
    r[0] = w[0] = 1;
    printf("reserved 768 MiB\n");
  }
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
