/* Probes the PVM-native guest kernel (test/pvm.test.ts, bench/pvm.ts). argv[1] picks what:
 *   cs            print the code selector user code runs with
 *   getppid N     N getppid system calls
 *   clock         print CLOCK_REALTIME, CLOCK_MONOTONIC twice, gettimeofday and time
 *   badptr        clock calls with pointers the guest kernel must not write (kernel, null, page 0)
 *   int19 | hc    user `int $0x19` (PVM's return-to-user) / `int $0x1b` (hypercall): must fault
 *   gs            arch_prctl(ARCH_SET_GS/GET_GS) against what rdgsbase reads, across a syscall
 *   bench N M     per-call cycles of N getppid, N clock_gettime and M forwarded close(-1), as JSON
 *   raw KIND N    TSC cycles per microsecond, then the cycles of each of N calls of KIND
 *                 (getppid | clock | close), one per line (bench/pvm.ts)
 * System calls are raw (no vDSO in farcall guests, and none used here). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return ((uint64_t)hi << 32) | lo;
}

static long sys2(long nr, long a, long b) {
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
  return r;
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  sys2(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t *samples;

/* TSC rate against the guest's own monotonic clock over a 20 ms busy wait. */
static double tsc_per_us(void) {
  uint64_t ns0 = mono_ns(), c0 = rdtsc();
  while (mono_ns() - ns0 < 20000000) {
  }
  uint64_t ns1 = mono_ns(), c1 = rdtsc();
  return (double)(c1 - c0) * 1000.0 / (double)(ns1 - ns0);
}

/* Times n calls of one system call, one rdtsc pair per call; prints a JSON member. */
static void timed(const char *name, long nr, long a, long b, long n, double cyc_per_us, int last) {
  for (long i = 0; i < n; i++) {
    uint64_t t0 = rdtsc();
    sys2(nr, a, b);
    samples[i] = rdtsc() - t0;
  }
  double sum = 0;
  for (long i = 0; i < n; i++) sum += samples[i];
  qsort(samples, n, 8, cmp);
  printf("\"%s\":{\"n\":%ld,\"p50\":%.4f,\"p99\":%.4f,\"min\":%.4f,\"mean\":%.4f}%s", name, n,
         samples[n / 2] / cyc_per_us, samples[n * 99 / 100] / cyc_per_us, samples[0] / cyc_per_us,
         sum / n / cyc_per_us, last ? "" : ",");
}

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "cs";
  if (!strcmp(how, "cs")) {
    unsigned short cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    printf("cs=%#x\n", cs);
    return 0;
  }
  if (!strcmp(how, "getppid")) {
    long n = argc > 2 ? atol(argv[2]) : 10000;
    long bad = 0;
    for (long i = 0; i < n; i++) bad += sys2(SYS_getppid, 0, 0) != 0;
    printf("getppid x%ld bad=%ld pid=%ld tid=%ld uid=%ld\n", n, bad, sys2(SYS_getpid, 0, 0), sys2(SYS_gettid, 0, 0),
           sys2(SYS_getuid, 0, 0));
    return 0;
  }
  if (!strcmp(how, "clock")) {
    struct timespec rt, m1, m2, coarse;
    struct timeval tv;
    long t;
    long r1 = sys2(SYS_clock_gettime, CLOCK_REALTIME, (long)&rt);
    long r2 = sys2(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&m1);
    for (volatile int i = 0; i < 1000000; i++) {
    }
    long r3 = sys2(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&m2);
    long r4 = sys2(SYS_gettimeofday, (long)&tv, 0);
    long r5 = sys2(SYS_clock_gettime, CLOCK_REALTIME_COARSE, (long)&coarse);
    t = sys2(SYS_time, 0, 0);
    printf("{\"ret\":[%ld,%ld,%ld,%ld,%ld],\"rt\":[%ld,%ld],\"m1\":[%ld,%ld],\"m2\":[%ld,%ld],\"tv\":[%ld,%ld],"
           "\"coarse\":[%ld,%ld],\"time\":%ld}\n",
           r1, r2, r3, r4, r5, (long)rt.tv_sec, rt.tv_nsec, (long)m1.tv_sec, m1.tv_nsec, (long)m2.tv_sec, m2.tv_nsec,
           (long)tv.tv_sec, (long)tv.tv_usec, (long)coarse.tv_sec, coarse.tv_nsec, t);
    return 0;
  }
  if (!strcmp(how, "badptr")) {
    long kernel = (long)0xffffff8000009000ull; /* the guest kernel's calibration page */
    struct timespec ok;
    printf("%ld %ld %ld %ld %ld %ld", sys2(SYS_clock_gettime, CLOCK_REALTIME, kernel),
           sys2(SYS_clock_gettime, CLOCK_MONOTONIC, 0), sys2(SYS_clock_gettime, CLOCK_MONOTONIC, 16),
           sys2(SYS_gettimeofday, kernel, 0), sys2(SYS_time, kernel, 0), sys2(SYS_clock_gettime, 99, (long)&ok));
    /* the calibration must still be intact: a sane clock afterwards */
    long r = sys2(SYS_clock_gettime, CLOCK_REALTIME, (long)&ok);
    printf(" after=%ld sec=%ld\n", r, (long)ok.tv_sec);
    return 0;
  }
  if (!strcmp(how, "gs")) {
    unsigned long got = 0, hw, hw2;
    long r = sys2(SYS_arch_prctl, 0x1001 /* ARCH_SET_GS */, 0x123456000l);
    __asm__ volatile("rdgsbase %0" : "=r"(hw));
    sys2(SYS_getppid, 0, 0);
    sys2(SYS_arch_prctl, 0x1004 /* ARCH_GET_GS */, (long)&got);
    __asm__ volatile("rdgsbase %0" : "=r"(hw2));
    printf("set=%ld get=%#lx rdgsbase=%#lx after=%#lx\n", r, got, hw, hw2);
    return 0;
  }
  if (!strcmp(how, "int19")) {
    __asm__ volatile("lea 1f(%%rip), %%rcx; mov $0x202, %%r11; int $0x19; 1:" ::: "rcx", "r11", "memory");
    printf("int $0x19 returned\n");
    return 3;
  }
  if (!strcmp(how, "hc")) {
    __asm__ volatile("mov $0x1001, %%eax; xor %%ebx, %%ebx; int $0x1b" ::: "rax", "rbx", "memory");
    printf("int $0x1b returned\n");
    return 3;
  }
  if (!strcmp(how, "raw")) {
    const char *kind = argc > 2 ? argv[2] : "getppid";
    long n = argc > 3 ? atol(argv[3]) : 1000;
    struct timespec ts;
    long nr = SYS_getppid, a = 0, b = 0;
    if (!strcmp(kind, "clock")) nr = SYS_clock_gettime, a = CLOCK_MONOTONIC, b = (long)&ts;
    if (!strcmp(kind, "close")) nr = SYS_close, a = -1;
    samples = malloc(sizeof(uint64_t) * n);
    for (long i = 0; i < n; i++) {
      uint64_t t0 = rdtsc();
      sys2(nr, a, b);
      samples[i] = rdtsc() - t0;
    }
    printf("%.3f\n", tsc_per_us());
    for (long i = 0; i < n; i++) printf("%lu\n", (unsigned long)samples[i]);
    return 0;
  }
  if (!strcmp(how, "bench")) {
    long n = argc > 2 ? atol(argv[2]) : 10000, m = argc > 3 ? atol(argv[3]) : 1000;
    samples = malloc(sizeof(uint64_t) * (n > m ? n : m));
    double cyc_per_us = tsc_per_us();
    struct timespec ts;
    printf("{\"cyclesPerUs\":%.3f,", cyc_per_us);
    timed("getppid", SYS_getppid, 0, 0, n, cyc_per_us, 0);
    timed("clock_gettime", SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, n, cyc_per_us, 0);
    timed("close", SYS_close, -1, 0, m, cyc_per_us, 1);
    printf("}\n");
    return 0;
  }
  fprintf(stderr, "unknown mode %s\n", how);
  return 2;
}
