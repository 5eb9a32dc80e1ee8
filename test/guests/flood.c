/* Prints forever: the output limit must stop it. */
#include <unistd.h>
int main(void) {
  static const char line[] = "flood flood flood flood flood flood flood flood flood flood\n";
  for (;;) write(1, line, sizeof line - 1);
}
