/* A request program that calls the counter backend through the gate, and tries hostile
 * things against it. Request: "command:arg". Response: text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "farcall.h"

typedef int64_t (*fn0)(void);
typedef int64_t (*fn1)(int64_t);
typedef int64_t (*fn2)(int64_t, int64_t);

static fn1 add, nap, chatty;
static fn0 get, secret_addr, crash, spin, hog, instance, flags, vec_secret;
static fn2 upcase, put, take, slow_add;
static char reply[8192];
static char buf[8192];

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define ANSWER(...) farcall_respond(reply, (size_t)snprintf(reply, sizeof reply, __VA_ARGS__))

int main(void) {
  add = (fn1)farcall_lookup("counter.add");
  nap = (fn1)farcall_lookup("counter.nap");
  chatty = (fn1)farcall_lookup("counter.chatty");
  get = (fn0)farcall_lookup("get");
  upcase = (fn2)farcall_lookup("upcase");
  put = (fn2)farcall_lookup("put");
  take = (fn2)farcall_lookup("take");
  secret_addr = (fn0)farcall_lookup("secret_addr");
  slow_add = (fn2)farcall_lookup("slow_add");
  crash = (fn0)farcall_lookup("crash");
  spin = (fn0)farcall_lookup("spin");
  hog = (fn0)farcall_lookup("hog");
  instance = (fn0)farcall_lookup("instance");
  flags = (fn0)farcall_lookup("flags");
  vec_secret = (fn0)farcall_lookup("vec_secret");
  void *missing = farcall_lookup("counter.nope");
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  char cmd[4096] = {0};
  memcpy(cmd, req, len < sizeof cmd - 1 ? len : sizeof cmd - 1);
  char *arg = strchr(cmd, ':');
  if (arg) *arg++ = 0;
  else arg = cmd + strlen(cmd);

  if (!strcmp(cmd, "lookup")) ANSWER("add=%d get=%d missing=%d", add != 0, get != 0, missing != 0);
  if (!strcmp(cmd, "add")) ANSWER("%lld", (long long)add(atoll(arg)));
  if (!strcmp(cmd, "get")) ANSWER("%lld", (long long)get());
  if (!strcmp(cmd, "slow_add")) ANSWER("%lld", (long long)slow_add(1, atoll(arg)));
  if (!strcmp(cmd, "instance")) ANSWER("%lld", (long long)instance());
  if (!strcmp(cmd, "upcase")) {
    /* Zero-copy: the backend rewrites our buffer in place; we never copy the result back. */
    size_t n = strlen(arg);
    memcpy(buf, arg, n);
    int64_t r = upcase((int64_t)(uintptr_t)buf, (int64_t)n);
    farcall_respond(buf, r < 0 ? 0 : (size_t)r);
  }
  if (!strcmp(cmd, "put")) ANSWER("%lld", (long long)put((int64_t)(uintptr_t)arg, (int64_t)strlen(arg)));
  if (!strcmp(cmd, "take")) {
    int64_t r = take((int64_t)(uintptr_t)buf, (int64_t)sizeof buf);
    farcall_respond(buf, r < 0 ? 0 : (size_t)r);
  }
  if (!strcmp(cmd, "loop")) {
    /* n calls of add(1) back to back; answers the total and ns per call. */
    long n = atol(arg);
    int64_t t0 = now_ns(), v = 0;
    for (long i = 0; i < n; i++) v = add(1);
    int64_t t1 = now_ns();
    ANSWER("%lld %lld", (long long)v, (long long)((t1 - t0) / (n ? n : 1)));
  }
  if (!strcmp(cmd, "loop4k")) {
    /* n calls of upcase over 4 KiB in place. */
    long n = atol(arg);
    memset(buf, 'a', 4096);
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) upcase((int64_t)(uintptr_t)buf, 4096);
    int64_t t1 = now_ns();
    ANSWER("%c %lld", buf[100], (long long)((t1 - t0) / (n ? n : 1)));
  }
  if (!strcmp(cmd, "crash")) ANSWER("%lld", (long long)crash());
  if (!strcmp(cmd, "spin")) ANSWER("%lld", (long long)spin());
  if (!strcmp(cmd, "hog")) ANSWER("%lld", (long long)hog());

  /* Hostile callers. */
  if (!strcmp(cmd, "dirty_flags")) {
    /* Call with DF, TF-free AC and DF set: the backend must run with clean flags. */
    int64_t f;
    __asm__ volatile("pushf; orq $0x40400, (%%rsp); popf; call *%1; pushf; andq $~0x40400, (%%rsp); popf"
                     : "=a"(f)
                     : "r"(flags)
                     : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
    ANSWER("%lld", (long long)f);
  }
  if (!strcmp(cmd, "vec_leak")) {
    vec_secret();
    char x[3][16];
    __asm__ volatile("movdqu %%xmm1, %0; movdqu %%xmm2, %1; movdqu %%xmm3, %2" : "=m"(x[0]), "=m"(x[1]), "=m"(x[2]));
    int leak = 0;
    for (int i = 0; i < 3; i++) leak |= !memcmp(x[i], "VEC-SECRET", 10);
    ANSWER("%s", leak ? "leak" : "clean");
  }
  if (!strcmp(cmd, "saved_after_crash")) {
    /* A call that never returns must still give back the callee-saved registers. */
    uint64_t rbx;
    __asm__ volatile("movabs $0x1122334455667788, %%rbx; call *%1; mov %%rbx, %0"
                     : "=a"(rbx)
                     : "r"(crash)
                     : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
    ANSWER("%llx", (unsigned long long)rbx);
  }
  if (!strcmp(cmd, "other_add")) { /* a second backend, attached as "other" */
    fn1 other = (fn1)farcall_lookup("other.add");
    if (!other) farcall_fail("no backend named other");
    ANSWER("%lld", (long long)other(atoll(arg)));
  }
  if (!strcmp(cmd, "sleepnap")) { /* sleep N ms here, then N ms inside a call: "<slept> <napped>" */
    int64_t ms = atoll(arg), t0 = now_ns();
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&d, 0);
    int64_t slept = (now_ns() - t0) / 1000000;
    ANSWER("%lld %lld", (long long)slept, (long long)nap(ms));
  }
  if (!strcmp(cmd, "nap")) ANSWER("%lld", (long long)nap(atoll(arg)));
  if (!strcmp(cmd, "chatty")) { /* n calls that each log a 20 000-byte line: the last result */
    int64_t r = 0;
    for (long i = 0, n = atol(arg); i < n; i++) r = chatty(20000);
    ANSWER("%lld", (long long)r);
  }
  if (!strcmp(cmd, "gate_syscall")) { /* the in-guest gate's number for entry 0, not from its stub */
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(0x47000000L) : "rcx", "r11", "memory");
    ANSWER("%ld", r);
  }
  if (!strcmp(cmd, "mmio_cross")) ANSWER("%llx", (unsigned long long)*(volatile uint64_t *)(uintptr_t)0x8000000ffcull);
  if (!strcmp(cmd, "mmio_rep")) {
    char dst[64];
    __asm__ volatile("rep movsb" : : "S"((void *)(uintptr_t)0x8000000000ull), "D"(dst), "c"(64) : "memory");
    ANSWER("%d", dst[0]);
  }
  if (!strcmp(cmd, "read_backend")) {
    uint64_t a = (uint64_t)secret_addr();
    ANSWER("read %c", *(volatile char *)(uintptr_t)a); /* not mapped outside a call */
  }
  if (!strcmp(cmd, "write_backend")) {
    *(volatile char *)(uintptr_t)(((uint64_t)secret_addr() & ~0x3ffffffffull) + 0x400000) = 1;
    ANSWER("wrote");
  }
  if (!strcmp(cmd, "backend_ptr")) {
    /* Hand the backend a pointer into its own memory: the validation must refuse it. */
    uint64_t a = (uint64_t)secret_addr();
    ANSWER("%lld", (long long)upcase((int64_t)a, 8));
  }
  if (!strcmp(cmd, "jump_mid")) {
    fn0 mid = (fn0)((char *)(void *)get + 8);
    ANSWER("%lld", (long long)mid());
  }
  if (!strcmp(cmd, "jump_unregistered")) {
    fn0 f = (fn0)((char *)(void *)get + 16 * 200);
    ANSWER("%lld", (long long)f());
  }
  if (!strcmp(cmd, "jump_backend_code")) {
    /* real backend code (the backend's 16 GiB window + its text), not a gate */
    fn0 f = (fn0)(uintptr_t)(((uint64_t)secret_addr() & ~0x3ffffffffull) + 0x401000);
    ANSWER("%lld", (long long)f());
  }
  if (!strcmp(cmd, "jump_return_trap")) {
    fn0 f = (fn0)(uintptr_t)0xffffff8040000a00ull;
    ANSWER("%lld", (long long)f());
  }
  if (!strcmp(cmd, "read_gate")) ANSWER("%d", *(volatile int *)(void *)get);
  if (!strcmp(cmd, "write_kernel")) {
    *(volatile uint64_t *)(uintptr_t)0xffffff8000010000ull = 0; /* page tables */
    ANSWER("wrote");
  }
  if (!strcmp(cmd, "read_gdt")) ANSWER("%llx", (unsigned long long)*(volatile uint64_t *)(uintptr_t)0xffffff8000000008ull);
  farcall_fail("unknown command");
  return 0;
}
