/* Round trips between two host processes, the alternatives farcall's gate is compared with
 * (bench/gate.ts). The parent sends a 16-byte message, the child answers 16 bytes, the parent
 * times each round trip with CLOCK_MONOTONIC and prints it in nanoseconds, one per line.
 *
 *   ipc_rtt MODE N CPU_PARENT CPU_CHILD      (CPU -1: not pinned)
 *   ipc_rtt busy                             (spins forever: background load)
 *
 * MODE: unix     socketpair(AF_UNIX, SOCK_STREAM), write/read
 *       pipe     two pipes, write/read
 *       eventfd  the message in a MAP_SHARED page, an eventfd each way to wake the other side
 *       spin     the message in a MAP_SHARED page, both sides spin on a sequence number
 *                (no system call at all; only meaningful across cores, and burns both cores)
 * The first N/10 round trips (at least 100) are a warm-up and are not printed. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 16

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  if (sched_setaffinity(0, sizeof s, &s)) die("sched_setaffinity");
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void full_write(int fd, const void *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) die("write");
    p = (const char *)p + w;
    n -= (size_t)w;
  }
}

static int full_read(int fd, void *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r == 0) return 0;
    if (r < 0) die("read");
    p = (char *)p + r;
    n -= (size_t)r;
  }
  return 1;
}

struct shm {
  _Atomic uint64_t req_seq, rsp_seq;
  char req[MSG], rsp[MSG];
};

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "busy")) {
    for (volatile uint64_t i = 0;; i++) {
    }
  }
  if (argc != 5) {
    fprintf(stderr, "usage: ipc_rtt unix|pipe|eventfd|spin N CPU_PARENT CPU_CHILD | ipc_rtt busy\n");
    return 2;
  }
  const char *mode = argv[1];
  long n = atol(argv[2]);
  int cpu_parent = atoi(argv[3]), cpu_child = atoi(argv[4]);
  long warm = n / 10 < 100 ? 100 : n / 10;
  long total = n + warm;

  int a[2], b[2]; /* a: parent -> child, b: child -> parent (a[1]/b[0] are the parent's ends) */
  int efd_req = -1, efd_rsp = -1;
  struct shm *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) die("mmap");
  memset(sh, 0, sizeof *sh);
  if (!strcmp(mode, "unix")) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
    a[1] = b[0] = sv[0];
    a[0] = b[1] = sv[1];
  } else if (!strcmp(mode, "pipe")) {
    if (pipe(a) || pipe(b)) die("pipe");
  } else if (!strcmp(mode, "eventfd")) {
    efd_req = eventfd(0, 0);
    efd_rsp = eventfd(0, 0);
    if (efd_req < 0 || efd_rsp < 0) die("eventfd");
  } else if (strcmp(mode, "spin")) {
    fprintf(stderr, "ipc_rtt: unknown mode %s\n", mode);
    return 2;
  }

  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    pin(cpu_child);
    if (!strcmp(mode, "pipe")) {
      close(a[1]);
      close(b[0]);
    }
    char m[MSG];
    if (!strcmp(mode, "unix") || !strcmp(mode, "pipe")) {
      while (full_read(a[0], m, MSG)) {
        m[0]++;
        full_write(b[1], m, MSG);
      }
    } else if (!strcmp(mode, "eventfd")) {
      for (long i = 0; i < total; i++) {
        uint64_t v;
        if (read(efd_req, &v, 8) != 8) die("eventfd read");
        memcpy(m, sh->req, MSG);
        m[0]++;
        memcpy(sh->rsp, m, MSG);
        v = 1;
        if (write(efd_rsp, &v, 8) != 8) die("eventfd write");
      }
    } else {
      for (uint64_t i = 1; i <= (uint64_t)total; i++) {
        while (atomic_load_explicit(&sh->req_seq, memory_order_acquire) != i) {
        }
        memcpy(m, sh->req, MSG);
        m[0]++;
        memcpy(sh->rsp, m, MSG);
        atomic_store_explicit(&sh->rsp_seq, i, memory_order_release);
      }
    }
    _exit(0);
  }
  pin(cpu_parent);
  if (!strcmp(mode, "pipe")) {
    close(a[0]);
    close(b[1]);
  }
  uint64_t *out = calloc((size_t)n, sizeof *out);
  char m[MSG] = "farcall-ipc-rtt";
  for (long i = 0; i < total; i++) {
    uint64_t t0 = now_ns();
    if (!strcmp(mode, "unix") || !strcmp(mode, "pipe")) {
      full_write(a[1], m, MSG);
      if (!full_read(b[0], m, MSG)) die("peer closed");
    } else if (!strcmp(mode, "eventfd")) {
      memcpy(sh->req, m, MSG);
      uint64_t v = 1;
      if (write(efd_req, &v, 8) != 8) die("eventfd write");
      if (read(efd_rsp, &v, 8) != 8) die("eventfd read");
      memcpy(m, sh->rsp, MSG);
    } else {
      memcpy(sh->req, m, MSG);
      atomic_store_explicit(&sh->req_seq, (uint64_t)i + 1, memory_order_release);
      while (atomic_load_explicit(&sh->rsp_seq, memory_order_acquire) != (uint64_t)i + 1) {
      }
      memcpy(m, sh->rsp, MSG);
    }
    uint64_t t1 = now_ns();
    if (i >= warm) out[i - warm] = t1 - t0;
  }
  if (!strcmp(mode, "unix")) shutdown(a[1], SHUT_RDWR);
  else if (!strcmp(mode, "pipe")) close(a[1]);
  int st;
  waitpid(child, &st, 0);
  for (long i = 0; i < n; i++) printf("%llu\n", (unsigned long long)out[i]);
  return 0;
}
