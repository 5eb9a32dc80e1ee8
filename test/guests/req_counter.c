/* A request program for the fork tests. Initialization builds some state; every request is
 * a text command:
 *   count            increments a global and answers its value (always 1 if resets work)
 *   echo:TEXT        answers TEXT
 *   secret:TEXT      hides TEXT (xor 0x5a) in the heap, a leaked mmap block, the stack, a
 *                    global and xmm15, then answers "stored"
 *   peek:TEXT        looks for the hidden form of TEXT in all guest memory and in xmm15 as the
 *                    request found it
 *   both:TEXT        secret then peek in one request (the control: peek must see it)
 *   dirty:N          writes N distinct pages of a static buffer
 *   burn:N           N x 100,000 steps of arithmetic (a fixed amount of CPU work), then answers
 *   crash | spin | oom | exit | fail   misbehave in that way
 *   big:N            answers N bytes
 *   pipe             opens a pipe, fills it with 5 bytes, answers "fds R W, pending N" (the same
 *                    every time if the fd table resets with the fork)
 *   file:PATH        opens PATH (never closed), reads 5 bytes, answers "fd N: BYTES"
 * argv[1]: guest memory in MiB (the range peek scans).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "farcall.h"

static int counter;
static char global_secret[64];
static unsigned char pages[4096 * 1100];
static unsigned char *init_table;
static size_t mem_bytes;
static char reply[256];

static void hide(char *dst, const char *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = (char)(src[i] ^ 0x5a);
}

__attribute__((noinline)) static void stack_secret(const char *s, size_t n) {
  volatile char buf[8192];
  hide((char *)buf + 4000, s, n);
  __asm__ volatile("" : : "r"(buf) : "memory");
}

static int scan_range(const unsigned char *lo, const unsigned char *hi, const char *needle, size_t n, const void *req,
                      size_t req_len) {
  for (const unsigned char *p = lo; p + n <= hi; p += 1) {
    p = memchr(p, needle[0], (size_t)(hi - p));
    if (!p || p + n > hi) break;
    if ((const char *)p == needle) continue;
    if ((const void *)p >= req && (const void *)p < (const void *)((const char *)req + req_len)) continue;
    if (memcmp(p, needle, n) == 0) return 1;
  }
  return 0;
}

/* All of guest memory but the unmapped guard below the main stack (64 KiB under the top
 * eighth of memory, at most 8 MiB: docs/architecture.md). */
static int scan(const char *needle, size_t n, const void *req, size_t req_len) {
  size_t stack = mem_bytes / 8 < (8u << 20) ? mem_bytes / 8 : (8u << 20);
  const unsigned char *guard_hi = (const unsigned char *)(mem_bytes - stack), *guard_lo = guard_hi - (64 << 10);
  return scan_range((const unsigned char *)0x400000, guard_lo, needle, n, req, req_len) ||
         scan_range(guard_hi, (const unsigned char *)mem_bytes, needle, n, req, req_len);
}

int main(int argc, char **argv) {
  mem_bytes = (argc > 1 ? (size_t)atoi(argv[1]) : 64) << 20;
  init_table = malloc(1 << 16);
  for (int i = 0; i < 1 << 16; i++) init_table[i] = (unsigned char)i;
  counter = 0;
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  /* xmm15 as this request found it, read before any library call: xmm15 is caller-saved, and
   * libc may use it (glibc's AVX2 strcmp keeps zeros there; CPUs with AVX-512 get a version that
   * does not), so only a read before any call says what the reset left. */
  unsigned char xmm_at_start[16];
  __asm__ volatile("movdqu %%xmm15, %0" : "=m"(xmm_at_start));
  char cmd[512] = {0};
  memcpy(cmd, req, len < sizeof cmd - 1 ? len : sizeof cmd - 1);
  char *arg = strchr(cmd, ':');
  if (arg) *arg++ = 0;
  size_t alen = arg ? strlen(arg) : 0;

  if (!strcmp(cmd, "count")) {
    counter++;
    int n = snprintf(reply, sizeof reply, "%d %d", counter, init_table[200]);
    farcall_respond(reply, (size_t)n);
  } else if (!strcmp(cmd, "echo")) {
    farcall_respond(arg, alen);
  } else if ((!strcmp(cmd, "secret") || !strcmp(cmd, "both")) && alen) {
    char *h = malloc(100);
    hide(h, arg, alen);
    char *m = malloc(1 << 20);  /* large: served by mmap */
    hide(m + 12345, arg, alen);
    hide(global_secret, arg, alen);
    stack_secret(arg, alen);
    char x[16] = {0};
    hide(x, arg, alen < 16 ? alen : 16);
    int only = !strcmp(cmd, "secret");
    /* Last before the response (no library call between): the request ends with it in xmm15. */
    __asm__ volatile("movdqu %1, %%xmm15\n\tmovdqu %%xmm15, %0" : "=m"(xmm_at_start) : "m"(x));
    if (only) farcall_respond("stored", 6);
  }
  if ((!strcmp(cmd, "peek") || !strcmp(cmd, "both")) && alen) {
    char needle[64];
    hide(needle, arg, alen);
    const unsigned char *x = xmm_at_start;  /* both: what it stored */
    int in_mem = scan(needle, alen, req, len);
    int in_xmm = memcmp(x, needle, alen < 16 ? alen : 16) == 0;
    int n = snprintf(reply, sizeof reply, "%s%s", in_mem ? "memory " : "", in_xmm ? "xmm " : "");
    if (!in_mem && !in_xmm) n = snprintf(reply, sizeof reply, "clean");
    farcall_respond(reply, (size_t)n);
  }
  if (!strcmp(cmd, "dirty") && alen) {
    int n = atoi(arg);
    volatile unsigned char *pp = pages;
    for (int i = 0; i < n && i < 1100; i++) pp[(size_t)i * 4096] = 1;
    farcall_respond("dirtied", 7);
  } else if (!strcmp(cmd, "burn") && alen) {
    volatile uint64_t x = 1;
    for (long i = 0, n = atol(arg) * 100000L; i < n; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    farcall_respond("burnt", 5);
  } else if (!strcmp(cmd, "crash")) {
    { volatile uintptr_t bad = 8; *(volatile int *)bad = 1; }
  } else if (!strcmp(cmd, "spin")) {
    for (volatile int i = 0;; i++) {
    }
  } else if (!strcmp(cmd, "oom")) {
    for (;;) {
      char *p = malloc(1 << 20);
      if (!p) abort();
      memset(p, 1, 1 << 20);
    }
  } else if (!strcmp(cmd, "exit")) {
    exit(3);
  } else if (!strcmp(cmd, "fail")) {
    farcall_fail("asked to fail");
  } else if (!strcmp(cmd, "pipe")) {
    int p[2];
    if (pipe(p) != 0) farcall_fail("pipe failed");
    write(p[1], "hello", 5);
    int pending = 0;
    ioctl(p[0], FIONREAD, &pending);
    int n = snprintf(reply, sizeof reply, "fds %d %d, pending %d", p[0], p[1], pending);
    farcall_respond(reply, (size_t)n);
  } else if (!strcmp(cmd, "file") && alen) {
    int fd = open(arg, O_RDONLY);
    char b[6] = {0};
    if (fd < 0 || read(fd, b, 5) < 0) farcall_fail("cannot open or read the file");
    int n = snprintf(reply, sizeof reply, "fd %d: %s", fd, b);
    farcall_respond(reply, (size_t)n);
  } else if (!strcmp(cmd, "big") && alen) {
    size_t n = (size_t)atol(arg);
    char *b = malloc(n);
    memset(b, 'b', n);
    farcall_respond(b, n);
  }
  farcall_fail("unknown command");
  return 0;
}
