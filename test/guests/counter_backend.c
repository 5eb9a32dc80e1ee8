/* A backend with persistent state: a counter, a byte store, and entries that misbehave on
 * purpose for the containment tests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "farcall.h"

static int64_t counter;
static char secret[64] = "backend-private-secret";
static char store[4096];
static size_t store_len;

/* add(x): counter += x; returns the new value. */
static int64_t add(int64_t x) {
  counter += x;
  return counter;
}

static int64_t get(void) { return counter; }

/* upcase(buf, len): rewrites the caller's buffer in place (zero-copy); returns len. */
static int64_t upcase(char *buf, size_t len) {
  if (!farcall_caller_ok(buf, len)) return -14;
  for (size_t i = 0; i < len; i++)
    if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] = (char)(buf[i] - 32);
  return (int64_t)len;
}

/* put / take: keep bytes across calls (copying from and to caller memory). */
static int64_t put(const char *buf, size_t len) {
  if (!farcall_caller_ok(buf, len) || len > sizeof store) return -14;
  memcpy(store, buf, len);
  store_len = len;
  return (int64_t)len;
}

static int64_t take(char *buf, size_t cap) {
  if (!farcall_caller_ok(buf, cap)) return -14;
  size_t n = store_len < cap ? store_len : cap;
  memcpy(buf, store, n);
  return (int64_t)n;
}

/* secret_addr(): leaks its own address, so a hostile caller can try to use it. */
static int64_t secret_addr(void) { return (int64_t)(uintptr_t)secret; }

/* slow_add(x, spins): a read-modify-write with a delay in the middle (lost updates show). */
static int64_t slow_add(int64_t x, int64_t spins) {
  int64_t v = counter;
  for (volatile int64_t i = 0; i < spins; i++) {
  }
  counter = v + x;
  return counter;
}

static int64_t crash(void) {
  counter = 999999; /* a half-done update the restore must undo */
  volatile uintptr_t bad = 16;
  *(volatile int *)bad = 1;
  return 0;
}

static int64_t spin(void) {
  counter = 777777;
  for (volatile int i = 0;; i++) {
  }
  return 0;
}

static int64_t hog(void) {
  counter = 555555;
  for (;;) {
    char *p = malloc(1 << 20);
    if (!p) abort();
    memset(p, 7, 1 << 20);
  }
}

static int64_t instance(void) { return farcall_instance(); }

/* chatty(bytes): counter += 1 and writes a line of `bytes` bytes to stdout (a backend that logs every call). */
static int64_t chatty(int64_t bytes) {
  static char line[65536];
  if (bytes < 1 || bytes > (int64_t)sizeof line) return -22;
  memset(line, 'L', (size_t)bytes - 1);
  line[bytes - 1] = '\n';
  counter += 1;
  return write(1, line, (size_t)bytes) == bytes ? counter : -5;
}

/* nap(ms): sleeps inside the call (a blocking system call served by the VMM); returns the ms slept. */
static int64_t nap(int64_t ms) {
  struct timespec a, b, d = {ms / 1000, (ms % 1000) * 1000000};
  clock_gettime(CLOCK_MONOTONIC, &a);
  nanosleep(&d, 0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

/* flags(): the RFLAGS the entry runs with (a caller's DF/TF/AC must not reach it). */
static int64_t flags(void) {
  uint64_t f;
  __asm__ volatile("pushf; pop %0" : "=r"(f));
  return (int64_t)f;
}

/* vec_secret(): leaves a secret in vector registers, as compiled code may. */
static int64_t vec_secret(void) {
  static const char s[16] = "VEC-SECRET-0123";
  __asm__ volatile("movdqu %0, %%xmm1; movdqu %0, %%xmm2; movdqu %0, %%xmm3" : : "m"(s) : "xmm1", "xmm2", "xmm3");
  return 1;
}

/* Host convention, buggy on purpose: copies out_cap bytes from `in` whatever in_len is. */
static int64_t host_peek(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in_len;
  if (out_cap > 64 || !farcall_caller_ok(in, out_cap) || !farcall_caller_ok(out, out_cap)) return -22;
  memcpy(out, in, out_cap);
  return (int64_t)out_cap;
}

/* Host convention: echo with a prefix. */
static int64_t host_echo(const void *in, size_t in_len, void *out, size_t out_cap) {
  if (!farcall_caller_ok(in, in_len) || !farcall_caller_ok(out, out_cap)) return -14;
  if (in_len + 5 > out_cap) return -28;
  memcpy(out, "echo:", 5);
  memcpy((char *)out + 5, in, in_len);
  return (int64_t)(in_len + 5);
}

/* Host convention: add the 8-byte little-endian integer in `in`, answer the new total. */
/* host_nap(ms as 8 bytes): a slow host call (nap's sleep); answers the milliseconds slept. */
static int64_t host_nap(const void *in, size_t in_len, void *out, size_t out_cap) {
  if (in_len != 8 || out_cap < 8 || !farcall_caller_ok(in, 8) || !farcall_caller_ok(out, 8)) return -22;
  int64_t ms;
  memcpy(&ms, in, 8);
  ms = nap(ms);
  memcpy(out, &ms, 8);
  return 8;
}

static int64_t host_add(const void *in, size_t in_len, void *out, size_t out_cap) {
  if (in_len != 8 || out_cap < 8 || !farcall_caller_ok(in, 8) || !farcall_caller_ok(out, 8)) return -22;
  int64_t x;
  memcpy(&x, in, 8);
  counter += x;
  memcpy(out, &counter, 8);
  return 8;
}

int main(void) {
  counter = 0;
  FARCALL_EXPORT(add);
  FARCALL_EXPORT(get);
  FARCALL_EXPORT(upcase);
  FARCALL_EXPORT(put);
  FARCALL_EXPORT(take);
  FARCALL_EXPORT(secret_addr);
  FARCALL_EXPORT(slow_add);
  FARCALL_EXPORT(crash);
  FARCALL_EXPORT(spin);
  FARCALL_EXPORT(hog);
  FARCALL_EXPORT(instance);
  FARCALL_EXPORT(chatty);
  FARCALL_EXPORT(nap);
  FARCALL_EXPORT(flags);
  FARCALL_EXPORT(vec_secret);
  FARCALL_EXPORT(host_peek);
  FARCALL_EXPORT(host_echo);
  FARCALL_EXPORT(host_add);
  FARCALL_EXPORT(host_nap);
  farcall_serve();
}
