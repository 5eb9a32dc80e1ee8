/* Faults on purpose: argv[1] picks how (null write, wild jump, ud2, divide by zero, kernel read). */
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "null";
  if (!strcmp(how, "null")) *(volatile int *)0 = 1;
  if (!strcmp(how, "wild")) ((void (*)(void))0x7ff000000000ull)();
  if (!strcmp(how, "ud2")) __asm__ volatile("ud2");
  if (!strcmp(how, "div")) { int q, z = 0; __asm__ volatile("cltd; idivl %2" : "=a"(q) : "a"(1), "r"(z) : "rdx"); return q; }
  if (!strcmp(how, "kernel")) return *(volatile int *)0xffffff8000000000ull;
  if (!strcmp(how, "trap")) ((void (*)(void))0xffffff8040000170ull)();
  return 0;
}
