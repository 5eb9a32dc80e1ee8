/* Calls 200 distinct unknown system-call numbers above Linux's range, then a few known ones:
 * the VMM must count them without growing a counter per number. */
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
  for (long nr = 100000; nr < 100200; nr++) syscall(nr);
  syscall(SYS_socket, 2, 1, 0);
  printf("done\n");
  return 0;
}
