/* Calls system calls farcall does not implement; each must answer ENOSYS. */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  long r1 = syscall(SYS_socket, 2, 1, 0);
  int e1 = errno;
  long r2 = syscall(SYS_fork);
  int e2 = errno;
  long r3 = syscall(SYS_socket, 2, 1, 0);
  printf("socket=%ld errno=%d fork=%ld errno=%d again=%ld enosys=%d\n", r1, e1, r2, e2, r3, ENOSYS);
  return (r1 == -1 && e1 == ENOSYS && r2 == -1 && e2 == ENOSYS) ? 0 : 1;
}
