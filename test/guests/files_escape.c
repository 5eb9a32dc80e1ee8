// Tries to read outside its read-only file view. Every path in argv[2..] is opened (open,
// openat from a directory fd, stat, readlink-then-open), read, and the bytes are searched for
// the marker argv[1] that only files outside the view contain. Prints one line per path:
// "PATH: ok N" (read N bytes, no marker), "PATH: errno E", or "PATH: LEAK".
// "race:PATH:N" opens PATH N times (the host swaps what it names meanwhile).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char buf[1 << 16];

static int try_read(int fd, const char *marker) {
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) return -errno;
  buf[n] = 0;
  return memmem(buf, (size_t)n, marker, strlen(marker)) ? -10000 : (int)n;
}

static int one(const char *path, const char *marker) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -errno;
  return try_read(fd, marker);
}

int main(int argc, char **argv) {
  const char *marker = argv[1];
  for (int i = 2; i < argc; i++) {
    int leaks = 0, oks = 0, last = 0;
    if (strncmp(argv[i], "race:", 5) == 0) {
      char path[256];
      snprintf(path, sizeof path, "%s", argv[i] + 5);
      char *colon = strrchr(path, ':');
      int n = atoi(colon + 1);
      *colon = 0;
      for (int k = 0; k < n; k++) {
        last = one(path, marker);
        if (last == -10000) leaks++;
        if (last >= 0) oks++;
      }
      printf("%s: %s %d/%d\n", argv[i], leaks ? "LEAK" : "ok", oks, n);
      continue;
    }
    if (strncmp(argv[i], "at:", 3) == 0) {  // at:DIR:REL, relative to an fd on DIR
      char d[256];
      snprintf(d, sizeof d, "%s", argv[i] + 3);
      char *rel = strchr(d, ':');
      *rel++ = 0;
      int dfd = open(d, O_RDONLY | O_DIRECTORY);
      int fd = dfd < 0 ? dfd : openat(dfd, rel, O_RDONLY);
      last = fd < 0 ? -errno : try_read(fd, marker);
    } else if (strncmp(argv[i], "link:", 5) == 0) {  // read the link, then open what it says
      char target[256] = {0};
      ssize_t n = readlink(argv[i] + 5, target, sizeof target - 1);
      last = n < 0 ? -errno : one(target, marker);
    } else {
      last = one(argv[i], marker);
    }
    if (last == -10000) printf("%s: LEAK\n", argv[i]);
    else if (last < 0) printf("%s: errno %d\n", argv[i], -last);
    else printf("%s: ok %d\n", argv[i], last);
  }
  struct stat st;
  printf("stat /: %d\n", stat("/", &st) == 0 && S_ISDIR(st.st_mode));
  printf("write: %d\n", open("/inside.txt", O_WRONLY) < 0 ? errno : 0);
  printf("create: %d\n", open("/new.txt", O_CREAT | O_WRONLY, 0644) < 0 ? errno : 0);
  return 0;
}
