/* A program whose zero-initialized data (bss) is 48 MiB: it loads with the default 64 MiB of
 * guest memory and is too big for 32 MiB. Touches both ends so the bss is really there. */
#include <stdio.h>
char big[48 << 20];  /* external linkage and an escaping pointer: the compiler must keep it */
int main(int argc, char **argv) {
  (void)argv;
  char *volatile p = big;
  p[0] = (char)argc;
  p[sizeof big - 1] = 2;
  printf("bss ok %d at %p\n", p[0] + p[sizeof big - 1], (void *)p);
  return 0;
}
