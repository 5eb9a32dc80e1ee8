/* A hostile tenant's request program for the overload suite (test/security/overload.test.ts):
 * no SDK, raw farcall system calls. Each request either holds its fork's host thread as long as
 * the VMM lets it (an endless loop, or one long sleep that needs no CPU) or answers at once. */
#include <string.h>

#define SYS_READY 0x4600
#define SYS_RESPOND 0x4601
#define SYS_FAIL 0x4602

static unsigned char arena[1 << 12] __attribute__((aligned(4096)));
static struct {
  void *buf;
  unsigned long len;
} current;

static long raw3(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

int main(void) {
  for (;;) {
    raw3(SYS_READY, (long)arena, sizeof arena, (long)&current);
    char cmd[32] = {0};
    memcpy(cmd, current.buf, current.len < sizeof cmd - 1 ? current.len : sizeof cmd - 1);
    if (!strcmp(cmd, "spin"))
      for (volatile unsigned long n = 0;; n++) {
      }
    if (!strcmp(cmd, "sleep")) {
      struct {
        long s, ns;
      } ts = {3600, 0};
      raw3(35 /* nanosleep */, (long)&ts, 0, 0);
    }
    if (!strcmp(cmd, "echo")) raw3(SYS_RESPOND, (long)cmd, (long)strlen(cmd), 0);
    raw3(SYS_FAIL, (long)"unknown command", 15, 0);
  }
}
