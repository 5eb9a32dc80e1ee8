/* POSIX threads as programs use them: workers with a mutex, a condition variable ping-pong,
 * thread-local storage, joins, a detached thread, timed waits, futex errors. Prints only what
 * Linux answers the same everywhere, so the test compares it with the same binary run natively.
 *   pthreads          the checks above
 *   pthreads bomb     creates threads (each waits forever) until pthread_create fails
 *   pthreads deadlock two threads wait for each other forever
 *   pthreads spin     a thread spins until the main thread, sleeping, sets a flag
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long total;
static __thread long mine;
static int turn, rounds;
static pid_t tids[8];

static void *work(void *arg) {
  long id = (long)arg, sum = 0;
  mine = id * 1000;
  for (long i = id * 100000; i < (id + 1) * 100000; i++) sum += i % 7;
  sched_yield();  /* another thread runs here: its TLS must not become ours */
  tids[id] = (pid_t)syscall(SYS_gettid);
  pthread_mutex_lock(&mu);
  total += sum;
  pthread_mutex_unlock(&mu);
  return (void *)(mine == id * 1000 ? sum : -1);
}

static void *pong(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < 1000; i++) {
    while (turn != 1) pthread_cond_wait(&cv, &mu);
    turn = 0;
    rounds++;
    pthread_cond_signal(&cv);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *sleeper(void *arg) {
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  *(int *)arg = 7;
  return NULL;
}

static int detached_done;
static void *detached(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  detached_done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *wait_forever(void *arg) {
  pthread_mutex_lock(&mu);
  for (;;) pthread_cond_wait(&cv, (pthread_mutex_t *)arg ? &mu : &mu);
  return NULL;
}

static pthread_t other;
static void *join_main(void *arg) {
  pthread_join(*(pthread_t *)arg, NULL);  /* main joins us: neither ever ends */
  return NULL;
}

/* Threads that spin (no system calls) until another thread, which also computes without system
 * calls, lets them go: only preemption gets them there. Their sums use SSE registers. */
static volatile int go_flag;
static double sums[4];
static void *crunch(void *arg) {
  long id = (long)arg;
  while (!go_flag) {
  }
  double x = 0;
  for (long i = 0; i < 2000000; i++) x += (double)(i % (id + 3)) * 0.5;
  sums[id] = x;
  return NULL;
}

static volatile int flag;
static void *spinner(void *arg) {
  (void)arg;
  while (!flag) {
  }
  return (void *)42;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc > 1 && !strcmp(argv[1], "bomb")) {
    int n = 0, err = 0;
    for (; n < 100000; n++) {
      pthread_t t;
      pthread_attr_t a;
      pthread_attr_init(&a);
      pthread_attr_setstacksize(&a, 64 << 10);
      err = pthread_create(&t, &a, wait_forever, NULL);
      if (err) break;
    }
    printf("created %d, then %s\n", n, err == EAGAIN ? "EAGAIN" : strerror(err));
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "deadlock")) {
    pthread_t self = pthread_self();
    pthread_create(&other, NULL, join_main, &self);
    pthread_join(other, NULL);
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "spin")) {
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, spinner, NULL);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    flag = 1;
    pthread_join(t, &r);
    printf("spinner returned %ld\n", (long)r);
    return 0;
  }

  pthread_t t[8];
  long expect = 0;
  for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, work, (void *)i);
  int tls_ok = 1;
  for (long i = 0; i < 8; i++) {
    void *r;
    pthread_join(t[i], &r);
    long s = 0;
    for (long j = i * 100000; j < (i + 1) * 100000; j++) s += j % 7;
    expect += s;
    if ((long)r != s) tls_ok = 0;
  }
  int distinct = 1;
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < i; j++)
      if (tids[i] == tids[j] || tids[i] == getpid()) distinct = 0;
  printf("workers: total %s, tls %s, tids %s\n", total == expect ? "ok" : "WRONG", tls_ok ? "ok" : "WRONG",
         distinct ? "distinct" : "WRONG");

  pthread_t p;
  pthread_create(&p, NULL, pong, NULL);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < 1000; i++) {
    turn = 1;
    pthread_cond_signal(&cv);
    while (turn != 0) pthread_cond_wait(&cv, &mu);
  }
  pthread_mutex_unlock(&mu);
  pthread_join(p, NULL);
  printf("ping-pong: %d rounds\n", rounds);

  int v = 0;
  pthread_create(&p, NULL, sleeper, &v);
  pthread_join(p, NULL);
  printf("sleeper: %d\n", v);

  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_create(&p, &a, detached, NULL);
  pthread_mutex_lock(&mu);
  while (!detached_done) pthread_cond_wait(&cv, &mu);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_nsec += 10 * 1000 * 1000;
  if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
  int tw = pthread_cond_timedwait(&cv, &mu, &dl);
  pthread_mutex_unlock(&mu);
  printf("detached: %d, timed wait: %s\n", detached_done, tw == ETIMEDOUT ? "ETIMEDOUT" : strerror(tw));

  pthread_t c[4];
  for (long i = 0; i < 4; i++) pthread_create(&c[i], NULL, crunch, (void *)i);
  volatile double busy = 0;
  for (long i = 0; i < 3000000; i++) busy += (double)(i & 7);
  go_flag = 1;
  for (int i = 0; i < 4; i++) pthread_join(c[i], NULL);
  printf("spinners: %.1f %.1f %.1f %.1f, main %.1f\n", sums[0], sums[1], sums[2], sums[3], busy);

  long r1 = syscall(SYS_futex, (void *)8, FUTEX_WAIT, 0, NULL, NULL, 0);
  int e1 = errno;
  long r2 = syscall(SYS_futex, (void *)8, FUTEX_WAKE, 1, NULL, NULL, 0);
  int e2 = errno;
  long r3 = syscall(SYS_futex, (void *)((char *)&v + 1), FUTEX_WAKE, 1, NULL, NULL, 0);
  int e3 = errno;
  v = 5;
  long r4 = syscall(SYS_futex, &v, FUTEX_WAIT_PRIVATE, 4, NULL, NULL, 0);
  int e4 = errno;
  struct timespec z = {0, 1000};
  long r5 = syscall(SYS_futex, &v, FUTEX_WAIT_PRIVATE, 5, &z, NULL, 0);
  int e5 = errno;
  printf("futex: bad wait %ld %s, bad wake %ld %s, unaligned %ld %s, changed %ld %s, timeout %ld %s\n", r1,
         strerrorname_np(e1), r2, strerrorname_np(e2), r3, strerrorname_np(e3), r4, strerrorname_np(e4), r5,
         strerrorname_np(e5));
  return 0;
}
