/* The request program of the gate benchmark (bench/gate.ts). It calls the backend attached as
 * "bench" and times every call with the TSC (ring-3 rdtsc does not exit; a guest clock_gettime
 * is itself a VM exit, so it cannot time single calls). Requests:
 *   cal              spins ~20 ms on the TSC between two clock_gettime calls; answers
 *                    "<ticks> <ns>" so the host can convert ticks to time
 *   call:N:SIZE      N calls of touch(buf, SIZE), buf in this program's memory (SIZE 0: nop());
 *                    answers N little-endian u32 TSC deltas, one per call
 *   tsc:N            N empty timed intervals (the cost of the timing itself), same answer format
 * The first call of each request is a warm-up and is not recorded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "farcall.h"

typedef int64_t (*fn0)(void);
typedef int64_t (*fn2)(void *, int64_t);

#define MAX_CALLS 8192
static fn0 nop;
static fn2 touch;
static uint32_t deltas[MAX_CALLS];
static unsigned char buf[4096] __attribute__((aligned(4096)));
static char reply[64];

static inline uint64_t tsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
  return ((uint64_t)hi << 32) | lo;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *itoa64(char *p, uint64_t v) {
  char t[24];
  int n = 0;
  do t[n++] = (char)('0' + v % 10); while (v /= 10);
  while (n) *p++ = t[--n];
  return p;
}

int main(void) {
  nop = (fn0)farcall_lookup("bench.nop");
  touch = (fn2)farcall_lookup("bench.touch");
  memset(buf, 'a', sizeof buf);
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  char cmd[64] = {0};
  memcpy(cmd, req, len < sizeof cmd - 1 ? len : sizeof cmd - 1);

  if (!strcmp(cmd, "cal")) {
    int64_t t0 = now_ns();
    uint64_t c0 = tsc(), c1;
    do c1 = tsc(); while (c1 - c0 < 50000000ull);
    int64_t t1 = now_ns();
    char *p = itoa64(reply, c1 - c0);
    *p++ = ' ';
    p = itoa64(p, (uint64_t)(t1 - t0));
    farcall_respond(reply, (size_t)(p - reply));
  }
  if (!strncmp(cmd, "call:", 5) || !strncmp(cmd, "tsc:", 4)) {
    int timing_only = cmd[0] == 't';
    char *a = strchr(cmd, ':') + 1;
    long n = atol(a);
    char *s = strchr(a, ':');
    long size = s ? atol(s + 1) : 0;
    if (n < 1 || n > MAX_CALLS || size < 0 || size > (long)sizeof buf) farcall_fail("bad arguments");
    if (!timing_only && (!nop || !touch)) farcall_fail("backend bench not attached");
    if (!timing_only) (void)(size ? touch(buf, size) : nop()); /* warm-up */
    for (long i = 0; i < n; i++) {
      uint64_t t0 = tsc();
      int64_t r = 0;
      if (!timing_only) r = size ? touch(buf, size) : nop();
      uint64_t t1 = tsc();
      if (r < 0) farcall_fail("call failed");
      deltas[i] = (uint32_t)(t1 - t0);
    }
    farcall_respond(deltas, (size_t)n * sizeof deltas[0]);
  }
  farcall_fail("unknown command");
  return 0;
}
