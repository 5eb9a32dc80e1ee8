/* A request program with threads (docs/threads.md). Initialization starts a worker that waits
 * on a futex with a known value in r12 and its own FS base; every request is a command:
 *   probe        wakes every futex a request could have left a thread on, has the worker report
 *                what it resumed with (r12, FS base, which wait it came from), makes a thread and
 *                answers "woken N, worker WAIT r12 R fs F, new tid T"
 *   leave        leaves a thread waiting on a futex, one waiting forever, one spinning (preempted),
 *                and the worker tampered with (FS base and r12 changed, waiting elsewhere), then
 *                answers "left"
 *   both         leave, then probe in one request (the control: probe must see it)
 *   deadlock     the main thread waits on a futex nobody will wake
 *   bomb         makes threads until pthread_create fails: "created N: ERR"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "farcall.h"

static volatile int word, word2, trap_word, done, never;
static volatile long rep_r12, rep_fs, rep_wait, fs_at_init;
static char reply[256];

static long raw(long nr, long a, long b, long c) {
  long ret;
  register long r10 __asm__("r10") = 0;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}

/* Waits while *w == 0 with `keep` in r12 across the system call; returns r12 after it. */
static long wait_keep(volatile int *w, long keep) {
  register long r12 __asm__("r12") = keep;
  register long r10 __asm__("r10") = 0;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret), "+r"(r12) : "a"(202L), "D"(w), "S"(0L), "d"(0L), "r"(r10)
                   : "rcx", "r11", "memory");
  return r12;
}

static long get_fs(void) {
  long fs = 0;
  raw(SYS_arch_prctl, 0x1003, (long)&fs, 0);
  return fs;
}

/* No libc after a wait: a tampered FS base must not crash the report. */
static void report(long r12, long which) {
  rep_r12 = r12;
  rep_fs = get_fs();
  rep_wait = which;
  done = 1;
  raw(SYS_futex, (long)&done, FUTEX_WAKE, 1);
}

static void *worker(void *arg) {
  (void)arg;
  fs_at_init = get_fs();
  for (;;) {
    long r12 = wait_keep(&word, 0x1111);
    if (!word) continue;
    if (word == 2) {  /* tamper: another FS base, another r12, another futex */
      word = 0;
      done = 1;
      raw(SYS_futex, (long)&done, FUTEX_WAKE, 1);
      raw(SYS_arch_prctl, 0x1002, 0x5000, 0);
      long r = wait_keep(&word2, 0x6666);
      word = 0;  /* the probe set both words: one report */
      report(r, 2);
    } else {
      word = 0;
      report(r12, 1);
    }
  }
  return NULL;
}

static void *trapped(void *arg) {
  (void)arg;
  while (!trap_word) raw(SYS_futex, (long)&trap_word, FUTEX_WAIT, 0);
  return NULL;
}

static void *forever(void *arg) {
  (void)arg;
  for (;;) raw(SYS_futex, (long)&never, FUTEX_WAIT, 0);
  return NULL;
}

static volatile long spins;
static void *spinner(void *arg) {  /* never makes a system call: only preemption stops it */
  (void)arg;
  for (;;) spins++;
  return NULL;
}

static void *tid_of(void *arg) {
  *(long *)arg = syscall(SYS_gettid);
  return NULL;
}

static void wait_done(void) {
  while (!done) raw(SYS_futex, (long)&done, FUTEX_WAIT, 0);
  done = 0;
}

static void leave(void) {
  pthread_t t;
  pthread_create(&t, NULL, trapped, NULL);
  pthread_create(&t, NULL, forever, NULL);
  pthread_create(&t, NULL, spinner, NULL);
  while (!spins) sched_yield();  /* the spinner ran, and was preempted */
  word = 2;
  raw(SYS_futex, (long)&word, FUTEX_WAKE, 1);
  wait_done();
}

static int probe(void) {
  int woken = (int)raw(SYS_futex, (long)&trap_word, FUTEX_WAKE, 1 << 30);
  trap_word = 1;
  word = 1;
  word2 = 1;
  raw(SYS_futex, (long)&word, FUTEX_WAKE, 1);
  raw(SYS_futex, (long)&word2, FUTEX_WAKE, 1);
  wait_done();
  long tid = 0;
  pthread_t t;
  pthread_create(&t, NULL, tid_of, &tid);
  pthread_join(t, NULL);
  return snprintf(reply, sizeof reply, "woken %d, worker wait %ld r12 %#lx fs %s, new tid %ld, spinner %s", woken,
                  rep_wait, rep_r12, rep_fs == fs_at_init ? "same" : "CHANGED", tid, spins ? "ran" : "none");
}

int main(void) {
  pthread_t w;
  pthread_create(&w, NULL, worker, NULL);
  while (!fs_at_init) sched_yield();
  sched_yield();  /* the worker is waiting on `word` when the master is ready */
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
#define IS(cmd) (len == sizeof cmd - 1 && !memcmp(req, cmd, len))
  if (IS("probe")) {
    farcall_respond(reply, (size_t)probe());
  } else if (IS("leave")) {
    leave();
    farcall_respond("left", 4);
  } else if (IS("both")) {
    leave();
    farcall_respond(reply, (size_t)probe());
  } else if (IS("deadlock")) {
    for (;;) raw(SYS_futex, (long)&never, FUTEX_WAIT, 0);
  } else if (IS("bomb")) {
    int n = 0, err = 0;
    for (; n < 100000; n++) {
      pthread_attr_t a;
      pthread_attr_init(&a);
      pthread_attr_setstacksize(&a, 64 << 10);
      err = pthread_create(&w, &a, forever, NULL);
      if (err) break;
    }
    farcall_respond(reply, (size_t)snprintf(reply, sizeof reply, "created %d: %s", n, strerrorname_np(err)));
  }
  farcall_fail("unknown command");
  return 0;
}
