/* Prints argv, selected environment variables, and stdin back, to check all three arrive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  for (int i = 0; i < argc; i++) printf("arg[%d]=%s\n", i, argv[i]);
  const char *v = getenv("FARCALL_TEST");
  printf("env FARCALL_TEST=%s\n", v ? v : "(unset)");
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    fwrite(buf, 1, (size_t)n, stdout);
    total += (size_t)n;
  }
  printf("\nstdin bytes=%zu\n", total);
  return 0;
}
