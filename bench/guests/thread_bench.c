/* Thread costs, timed inside the program (CLOCK_MONOTONIC), the same binary in a VM and natively
 * (bench/threads.ts):
 *   thread_bench create N     N x (pthread_create of an empty thread + pthread_join), µs each
 *   thread_bench pingpong N   N round trips between two threads over one futex word, µs each
 * Prints the samples, one per line. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *empty(void *arg) { return arg; }

static volatile int word; /* 1: the partner's turn, 0: the main thread's */

static void wait_while(int v) {
  while (__atomic_load_n(&word, __ATOMIC_ACQUIRE) == v) syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void set_wake(int v) {
  __atomic_store_n(&word, v, __ATOMIC_RELEASE);
  syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static long rounds;
static void *partner(void *arg) {
  (void)arg;
  for (long i = 0; i < rounds; i++) {
    wait_while(0);
    set_wake(0);
  }
  return NULL;
}

int main(int argc, char **argv) {
  long n = argc > 2 ? atol(argv[2]) : 1000;
  double *us = calloc((size_t)n, sizeof *us);
  if (argc > 1 && !strcmp(argv[1], "create")) {
    for (long i = 0; i < n; i++) {
      double t0 = now_us();
      pthread_t t;
      if (pthread_create(&t, NULL, empty, NULL)) return 2;
      pthread_join(t, NULL);
      us[i] = now_us() - t0;
    }
  } else if (argc > 1 && !strcmp(argv[1], "pingpong")) {
    rounds = n + 10;
    pthread_t t;
    pthread_create(&t, NULL, partner, NULL);
    for (long i = 0; i < rounds; i++) {
      double t0 = now_us();
      set_wake(1);
      wait_while(1);
      if (i >= 10) us[i - 10] = now_us() - t0;  /* the first rounds warm up */
    }
    pthread_join(t, NULL);
  } else {
    return 1;
  }
  for (long i = 0; i < n; i++) printf("%.3f\n", us[i]);
  return 0;
}
