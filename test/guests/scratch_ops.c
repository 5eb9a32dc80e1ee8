/* File operations on the scratch directory, driven by a script of commands separated by ';'.
 * Each command prints one line: "CMD ARG: RESULT" (a number or text), or "CMD ARG: errno N".
 *   w P TEXT     create/truncate P and write TEXT        a P TEXT   append TEXT to P
 *   r P          P's contents                            big P N    write N bytes 'x' to P
 *   fill P       write 64 KiB blocks to P until a write fails: "BYTES errno N"
 *   ls P         the names in directory P, sorted       stat P     "SIZE dir|file"
 *   rm P | mkdir P | rmdir P | mv A B | sym T P | link A B | trunc P N     the system call's result
 *   mem N        dirty N bytes of guest memory (malloc)
 *   inst         the backend instance (farcall_instance)    crash | spin   a fault, a loop
 *   excl P       open P with O_CREAT|O_EXCL
 *   map P        mmap P MAP_PRIVATE (write to the copy, print it), then try MAP_SHARED
 *   lock P       F_SETLK then F_GETLK of a write lock on P      cd P   chdir, then getcwd
 *   pw P OFF     pwrite one byte 'x' to P (created) at offset OFF
 *   seek P A B   lseek P to A (SEEK_SET), then by B (SEEK_CUR): "R1 R2" (or errno)
 * As a request program (scratch_req): argv[1], if given, is run once before farcall_ready()
 * (the master's files); a request's bytes are a script, the answer its output.
 * As a backend (scratch_backend, argv[1] "backend", argv[2] an optional script run before
 * farcall_serve()): entry `ops`, host convention, script in, output out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "farcall.h"

static char out[1 << 16];
static size_t olen;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out + olen, sizeof out - olen, fmt, ap);
  va_end(ap);
  if (n > 0) olen += (size_t)n < sizeof out - olen ? (size_t)n : sizeof out - olen - 1;
}

static void result(const char *cmd, const char *arg, long r) {
  if (r < 0) say("%s %s: errno %d\n", cmd, arg, errno);
  else say("%s %s: %ld\n", cmd, arg, r);
}

static long write_all(int fd, const char *p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, p + done, n - done);
    if (w < 0) return done ? (long)done : -1;
    done += (size_t)w;
  }
  return (long)done;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void one(char *c) {
  char *cmd = strtok(c, " "), *p = strtok(NULL, " "), *rest = strtok(NULL, "");
  if (!cmd) return;
  if (!p) p = "";
  if (!strcmp(cmd, "w") || !strcmp(cmd, "a")) {
    int fd = open(p, O_WRONLY | O_CREAT | (cmd[0] == 'w' ? O_TRUNC : O_APPEND), 0644);
    if (fd < 0) return result(cmd, p, -1);
    long n = write_all(fd, rest ? rest : "", rest ? strlen(rest) : 0);
    close(fd);
    result(cmd, p, n);
  } else if (!strcmp(cmd, "big") || !strcmp(cmd, "fill")) {
    static char block[65536];
    memset(block, 'x', sizeof block);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return result(cmd, p, -1);
    long want = cmd[0] == 'b' ? atol(rest ? rest : "0") : -1, total = 0;
    for (;;) {
      size_t k = want < 0 ? sizeof block : (size_t)(want - total) < sizeof block ? (size_t)(want - total) : sizeof block;
      if (!k) break;
      ssize_t w = write(fd, block, k);
      if (w < 0) {
        say("%s %s: %ld errno %d\n", cmd, p, total, errno);
        close(fd);
        return;
      }
      total += w;
    }
    close(fd);
    result(cmd, p, total);
  } else if (!strcmp(cmd, "r")) {
    static char buf[1 << 15];
    int fd = open(p, O_RDONLY);
    if (fd < 0) return result(cmd, p, -1);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return result(cmd, p, -1);
    buf[n] = 0;
    say("r %s: %s\n", p, buf);
  } else if (!strcmp(cmd, "ls")) {
    DIR *d = opendir(p);
    if (!d) return result(cmd, p, -1);
    char *names[512];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 512;)
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp);
    say("ls %s:", p);
    for (int i = 0; i < n; i++) say(" %s", names[i]), free(names[i]);
    say("\n");
  } else if (!strcmp(cmd, "stat")) {
    struct stat st;
    if (stat(p, &st) < 0) return result(cmd, p, -1);
    say("stat %s: %ld %s\n", p, (long)st.st_size, S_ISDIR(st.st_mode) ? "dir" : "file");
  } else if (!strcmp(cmd, "rm")) {
    result(cmd, p, unlink(p));
  } else if (!strcmp(cmd, "mkdir")) {
    result(cmd, p, mkdir(p, 0755));
  } else if (!strcmp(cmd, "rmdir")) {
    result(cmd, p, rmdir(p));
  } else if (!strcmp(cmd, "mv")) {
    result(cmd, p, rename(p, rest ? rest : ""));
  } else if (!strcmp(cmd, "sym")) {
    result(cmd, p, symlink(p, rest ? rest : ""));
  } else if (!strcmp(cmd, "link")) {
    result(cmd, p, link(p, rest ? rest : ""));
  } else if (!strcmp(cmd, "trunc")) {
    result(cmd, p, truncate(p, atol(rest ? rest : "0")));
  } else if (!strcmp(cmd, "pw")) {
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return result(cmd, p, -1);
    long r = pwrite(fd, "x", 1, (off_t)strtoull(rest ? rest : "0", NULL, 0));
    close(fd);
    result(cmd, p, r);
  } else if (!strcmp(cmd, "seek")) {
    int fd = open(p, O_RDONLY);
    if (fd < 0) return result(cmd, p, -1);
    char *b = NULL;
    long long a = strtoll(rest ? rest : "0", &b, 0), r1 = lseek(fd, a, SEEK_SET);
    long long r2 = lseek(fd, strtoll(b ? b : "0", NULL, 0), SEEK_CUR);
    int e = errno;
    close(fd);
    say("seek %s: %lld %lld%s%s\n", p, r1, r2, r2 < 0 ? " errno " : "", r2 < 0 ? strerror(e) : "");
  } else if (!strcmp(cmd, "excl")) {
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) close(fd);
    result(cmd, p, fd < 0 ? -1 : 0);
  } else if (!strcmp(cmd, "map")) { /* MAP_PRIVATE copy: its first bytes; then MAP_SHARED */
    int fd = open(p, O_RDWR);
    if (fd < 0) return result(cmd, p, -1);
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) return close(fd), result(cmd, p, -1);
    m[0] = '!'; /* a private copy: the file does not change */
    say("map %s: %.8s\n", p, m);
    munmap(m, 4096);
    m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    say("mapshared %s: %s\n", p, m == MAP_FAILED ? "refused" : "mapped");
    close(fd);
  } else if (!strcmp(cmd, "lock")) { /* F_SETLK then F_GETLK of a write lock */
    int fd = open(p, O_RDWR);
    if (fd < 0) return result(cmd, p, -1);
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int a = fcntl(fd, F_SETLK, &l);
    l.l_type = F_WRLCK;
    int b = fcntl(fd, F_GETLK, &l);
    say("lock %s: %d %d %s\n", p, a, b, l.l_type == F_UNLCK ? "unlocked" : "locked");
    close(fd);
  } else if (!strcmp(cmd, "cd")) {
    char cwd[256];
    int r = chdir(p);
    say("cd %s: %d %s\n", p, r, r == 0 && getcwd(cwd, sizeof cwd) ? cwd : "-");
  } else if (!strcmp(cmd, "inst")) {
    say("inst: %d\n", farcall_instance());
  } else if (!strcmp(cmd, "crash")) {
    volatile uintptr_t bad = 16;
    *(volatile int *)bad = 1;
  } else if (!strcmp(cmd, "mem")) { /* dirties P bytes of guest memory */
    size_t n = (size_t)atol(p);
    char *m = malloc(n);
    if (m) memset(m, 1, n);
    say("mem: %s\n", m ? "ok" : "failed");
  } else if (!strcmp(cmd, "spin")) {
    for (volatile int i = 0;; i++) {
    }
  } else {
    say("%s: unknown\n", cmd);
  }
}

static void run(const char *script, size_t len) {
  static char s[1 << 16];
  olen = 0;
  if (len >= sizeof s) len = sizeof s - 1;
  memcpy(s, script, len);
  s[len] = 0;
  for (char *save = NULL, *c = strtok_r(s, ";", &save); c; c = strtok_r(NULL, ";", &save)) one(c);
}

static int64_t ops(const void *in, size_t in_len, void *o, size_t cap) {
  if (!farcall_caller_ok(in, in_len) || !farcall_caller_ok(o, cap)) return -14;
  run(in, in_len);
  size_t n = olen < cap ? olen : cap;
  memcpy(o, out, n);
  return (int64_t)n;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "backend")) {
    if (argc > 2) run(argv[2], strlen(argv[2]));  /* files every instance starts with */
    FARCALL_EXPORT(ops);
    farcall_serve();
  }
  if (argc > 1) run(argv[1], strlen(argv[1]));
  farcall_ready();
  void *req;
  size_t len;
  farcall_request(&req, &len);
  run(req, len);
  farcall_respond(out, olen);
  return 0;
}
