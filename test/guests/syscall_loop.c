/* Makes argv[1] getppid system calls (default 0) and exits: the per-call cost of the VMM's
 * system-call path is the difference between two counts divided by their difference. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; i < n; i++) syscall(SYS_getppid);
  return 0;
}
