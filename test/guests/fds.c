// File descriptors inside one process: poll/ppoll, pipes, dup*, eventfd, epoll, fcntl, umask,
// getgroups, sysinfo, prctl. Prints only what Linux answers the same everywhere, so the test
// compares this output with the same binary run natively, byte for byte.
// `fds deadlock`: reads an empty pipe it holds the writer of (never returns on Linux);
// `fds abort`: makes an unsupported call (fork), then aborts.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static void check(const char *what, long got, long want) {
  printf("%s: %s\n", what, got == want ? "ok" : "WRONG");
  if (got != want) printf("  got %ld want %ld (errno %d)\n", got, want, errno);
}

int main(int argc, char **argv) {
  int p[2];
  if (argc > 1 && strcmp(argv[1], "deadlock") == 0) {
    pipe(p);
    char c;
    return (int)read(p[0], &c, 1);
  }
  if (argc > 1 && strcmp(argv[1], "abort") == 0) {  // an unsupported call, then a crash
    syscall(57 /* fork */);
    abort();
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  // What Rust's runtime does first: poll fds 0-2 for POLLNVAL.
  struct pollfd std3[3] = {{0, 0, 0}, {1, 0, 0}, {2, 0, 0}};
  check("poll stdio", poll(std3, 3, 0), 0);
  check("stdio open", (std3[0].revents | std3[1].revents | std3[2].revents) & POLLNVAL, 0);
  struct pollfd bad = {77, POLLIN, 0};
  check("poll closed fd", poll(&bad, 1, 0), 1);
  check("  POLLNVAL", bad.revents, POLLNVAL);

  // A pipe inside one process (what a shell here-document needs).
  check("pipe2", pipe2(p, O_CLOEXEC), 0);
  check("pipe fds", p[0] == 3 && p[1] == 4, 1);
  check("cloexec", fcntl(p[0], F_GETFD), FD_CLOEXEC);
  struct pollfd pr = {p[0], POLLIN, 0};
  check("empty pipe not readable", poll(&pr, 1, 0), 0);
  check("write pipe", write(p[1], "hello pipe", 10), 10);
  check("pipe readable", poll(&pr, 1, 0), 1);
  int avail = 0;
  ioctl(p[0], FIONREAD, &avail);
  check("FIONREAD", avail, 10);
  char buf[64] = {0};
  check("read pipe part", read(p[0], buf, 5), 5);
  check("read pipe rest", read(p[0], buf + 5, sizeof buf), 5);
  printf("pipe said: %s\n", buf);
  check("nonblock", fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  check("empty nonblocking read", read(p[0], buf, 1) == -1 && errno == EAGAIN, 1);
  check("pipe size", fcntl(p[1], F_GETPIPE_SZ), 65536);
  static char big[70000];
  check("nonblocking writer", fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
  check("fill the pipe", write(p[1], big, sizeof big), 65536);
  check("full pipe", write(p[1], big, 1) == -1 && errno == EAGAIN, 1);

  // dup, dup2 (onto stdin), dup3.
  int q[2];
  pipe(q);
  write(q[1], "from stdin\n", 11);
  close(q[1]);
  check("dup2 onto 0", dup2(q[0], 0), 0);
  close(q[0]);
  char line[32] = {0};
  check("read dup'ed stdin", read(0, line, sizeof line), 11);
  check("EOF after writer closed", read(0, line, sizeof line), 0);
  printf("stdin said: %s", line);
  int d = dup(1);
  check("dup lowest free", d, q[0]);
  check("write through dup", write(d, "via dup\n", 8), 8);
  check("dup3 same fd", dup3(d, d, 0), -1);
  check("dup3 cloexec", dup3(1, 20, O_CLOEXEC), 20);
  check("  has cloexec", fcntl(20, F_GETFD), FD_CLOEXEC);
  check("F_DUPFD from 30", fcntl(1, F_DUPFD, 30), 30);
  check("close", close(30), 0);
  check("close twice", close(30) == -1 && errno == EBADF, 1);
  check("write closed", write(30, "x", 1) == -1 && errno == EBADF, 1);

  // eventfd and epoll.
  int e = eventfd(3, EFD_NONBLOCK);
  uint64_t v = 0;
  check("eventfd read", read(e, &v, 8), 8);
  check("  value", (long)v, 3);
  check("eventfd empty", read(e, &v, 8) == -1 && errno == EAGAIN, 1);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
  check("epoll add", epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev), 0);
  check("epoll add twice", epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == -1 && errno == EEXIST, 1);
  struct epoll_event out[4];
  check("epoll nothing ready", epoll_wait(ep, out, 4, 0), 0);
  v = 5;
  write(e, &v, 8);
  check("epoll one ready", epoll_wait(ep, out, 4, 0), 1);
  check("  data", (long)out[0].data.u64, 42);
  check("  level-triggered again", epoll_wait(ep, out, 4, 0), 1);
  ev.events = EPOLLIN | EPOLLET;
  check("epoll mod ET", epoll_ctl(ep, EPOLL_CTL_MOD, e, &ev), 0);
  check("  edge once", epoll_wait(ep, out, 4, 0), 1);
  check("  then quiet", epoll_wait(ep, out, 4, 0), 0);
  struct timespec t0, t1, ten = {0, 20000000};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int w[2];
  pipe(w);
  struct pollfd pw = {w[0], POLLIN, 0};
  check("ppoll times out", ppoll(&pw, 1, &ten, NULL), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  check("  after 20 ms", ms >= 19 && ms < 2000, 1);
  check("epoll del", epoll_ctl(ep, EPOLL_CTL_DEL, e, NULL), 0);

  // The rest of the process personality.
  check("umask", umask(077), 022);
  check("umask back", umask(022), 077);
  check("getgroups", getgroups(0, NULL) >= 0, 1);
  struct sysinfo si;
  check("sysinfo", sysinfo(&si), 0);
  check("  ram", si.totalram > 0 && si.freeram <= si.totalram && si.mem_unit == 1 && si.procs > 0, 1);
  check("prctl set name", prctl(PR_SET_NAME, "fds-test-name-long"), 0);
  char name[17] = {0};
  check("prctl get name", prctl(PR_GET_NAME, name), 0);
  printf("name: %s\n", name);
  check("prctl unknown", prctl(0x7fff0000, 0) == -1 && errno == EINVAL, 1);
  struct stat st;
  check("fstat pipe", fstat(p[0], &st), 0);
  check("  is a fifo", S_ISFIFO(st.st_mode), 1);
  printf("done\n");
  return 0;
}
