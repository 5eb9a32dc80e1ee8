/* The program of the file benchmark (bench/files.ts); the same static binary runs in a VM and
 * natively. Prints one line per repetition: the microseconds it took.
 *   read PATH REPS        read PATH whole, in 64 KiB reads, REPS times
 *   make PATH MIB         first write a MIB MiB file at PATH (not timed), then as "read"
 *   getppid N REPS        N getppid() calls per repetition
 *   umask N REPS          N umask() calls per repetition (always answered by the VMM)
 *   pread1 PATH N REPS    N one-byte pread()s of PATH per repetition */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static char buf[65536];

static int read_all(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return perror(path), 1;
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
  }
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) return fprintf(stderr, "usage: see files_bench.c\n"), 2;
  const char *mode = argv[1];
  if (!strcmp(mode, "make")) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return perror(argv[2]), 1;
    memset(buf, 'f', sizeof buf);
    for (long i = 0; i < atol(argv[3]) * 16; i++)
      if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return perror("write"), 1;
    close(fd);
    mode = "read";
    argv[3] = argc > 4 ? argv[4] : "5";
  }
  if (!strcmp(mode, "read")) {
    for (long r = 0; r < atol(argv[3]); r++) {
      double t = now_us();
      if (read_all(argv[2])) return 1;
      printf("%.3f\n", now_us() - t);
    }
  } else if (!strcmp(mode, "getppid") || !strcmp(mode, "umask")) {
    long n = atol(argv[2]), nr = mode[0] == 'g' ? SYS_getppid : SYS_umask;
    for (long r = 0; r < atol(argv[3]); r++) {
      double t = now_us();
      for (long i = 0; i < n; i++) syscall(nr, 022);
      printf("%.3f\n", now_us() - t);
    }
  } else if (!strcmp(mode, "pread1")) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0 || argc < 5) return perror(argv[2]), 1;
    long n = atol(argv[3]);
    for (long r = 0; r < atol(argv[4]); r++) {
      double t = now_us();
      for (long i = 0; i < n; i++) pread(fd, buf, 1, i % 4096);
      printf("%.3f\n", now_us() - t);
    }
  } else {
    return fprintf(stderr, "unknown mode %s\n", mode), 2;
  }
  return 0;
}
