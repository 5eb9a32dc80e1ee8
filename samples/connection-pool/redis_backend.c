/* connection-pool sample, the backend: each instance holds ONE persistent TCP connection to a
 * Redis server and runs commands on it (RESP). With `instances: N` in the config, N request
 * forks can run Redis commands at once, over N connections, and no request ever pays for a
 * connect.
 *
 * The address comes from the environment (REDIS_ADDR=ip:port, default 127.0.0.1:6379); the
 * broker lets the backend connect only to what its config's network.allow lists, anything else
 * fails with EACCES.
 *
 * Each instance connects lazily, in its first call: instances are copies of the backend made
 * at farcall_serve(), so a connection opened before it would not belong to any one instance.
 * After a fault the instance is restored (memory back to its state at farcall_serve(), sockets
 * closed), so it reconnects on its next call.
 *
 * Entries (host byte-buffer convention, callable from request programs and from TypeScript):
 *   command(in, in_len, out, cap): `in` is one or more text commands, one a line ("SET k v",
 *       "GET k"; arguments split on spaces, "double quotes" for arguments with spaces). They
 *       are pipelined on this instance's connection in one call (one write, then the replies),
 *       so a multi-line call holds one instance throughout. `out` gets one line per reply:
 *       simple and bulk strings as is, integers as digits, nil as "(nil)", errors as
 *       "(error) ...", array elements on continuation lines indented by two spaces. Returns
 *       the length, or a negative errno with an explanation in `out` (-EACCES: the address
 *       is not in network.allow; -ECONNREFUSED, -EPIPE, -EPROTO ...).
 *   info(in, in_len, out, cap): "instance=I connected=0|1 client_id=ID commands=N connects=N". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "farcall.h"

static char addr_text[64] = "127.0.0.1:6379";
static struct sockaddr_in addr;

/* Per instance (each instance has its own copy of this memory). */
static int fd = -1;
static long long client_id = -1;
static unsigned long long commands, connects;
static char rbuf[64 << 10];
static size_t rpos, rlen;
static char wbuf[64 << 10];

/* Writes a message into out (always NUL-terminated when cap > 0); returns -err. */
static int64_t fail(char *out, size_t cap, int err, const char *what) {
  if (cap) snprintf(out, cap, "%s %s: %s", what, addr_text, strerror(err));
  return -err;
}

static void disconnect(void) {
  if (fd >= 0) close(fd);
  fd = -1;
  client_id = -1;
  rpos = rlen = 0;
}

/* ---- buffered reading of one RESP reply ---- */

static int fill(void) {
  if (rpos == rlen) rpos = rlen = 0;
  if (rlen == sizeof rbuf) {
    if (rpos == 0) return -EPROTO;  /* a line longer than the buffer */
    memmove(rbuf, rbuf + rpos, rlen - rpos);
    rlen -= rpos;
    rpos = 0;
  }
  ssize_t n = read(fd, rbuf + rlen, sizeof rbuf - rlen);
  if (n == 0) return -ECONNRESET;
  if (n < 0) return -errno;
  rlen += (size_t)n;
  return 0;
}

/* The next CRLF-terminated line (without CRLF), valid until the next read. */
static int read_line(char **line, size_t *n) {
  for (;;) {
    char *s = rbuf + rpos;
    char *nl = memchr(s, '\n', rlen - rpos);
    if (nl && nl > s && nl[-1] == '\r') {
      *line = s;
      *n = (size_t)(nl - 1 - s);
      rpos = (size_t)(nl + 1 - rbuf);
      return 0;
    }
    int r = fill();
    if (r < 0) return r;
  }
}

static int read_exact(char *dst, size_t n, char *sink_end) {
  while (n) {
    if (rpos == rlen) {
      int r = fill();
      if (r < 0) return r;
    }
    size_t k = rlen - rpos < n ? rlen - rpos : n;
    if (dst && dst + k <= sink_end) memcpy(dst, rbuf + rpos, k), dst += k;
    else dst = NULL; /* keeps consuming, stops copying */
    rpos += k;
    n -= k;
  }
  return 0;
}

struct out {
  char *p;
  size_t len, cap;
  int truncated;
};

static void emit(struct out *o, const char *s, size_t n) {
  if (o->len + n > o->cap) {
    n = o->cap - o->len;
    o->truncated = 1;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

/* Reads one reply and renders it as text; depth guards nested arrays. */
static int read_reply(struct out *o, int depth) {
  char *line;
  size_t n;
  int r = read_line(&line, &n);
  if (r < 0) return r;
  if (n == 0) return -EPROTO;
  char t = line[0];
  if (t == '+' || t == ':') {
    emit(o, line + 1, n - 1);
    return 0;
  }
  if (t == '-') {
    emit(o, "(error) ", 8);
    emit(o, line + 1, n - 1);
    return 0;
  }
  char num[24];
  if (n - 1 >= sizeof num) return -EPROTO;
  memcpy(num, line + 1, n - 1);
  num[n - 1] = 0;
  long long len = atoll(num);
  if (t == '$') {
    if (len < 0) {
      emit(o, "(nil)", 5);
      return 0;
    }
    size_t room = o->cap - o->len;
    size_t take = (size_t)len < room ? (size_t)len : room;
    if (take < (size_t)len) o->truncated = 1;
    if ((r = read_exact(o->p + o->len, take, o->p + o->cap)) < 0) return r;
    o->len += take;
    if ((r = read_exact(NULL, (size_t)len - take, NULL)) < 0) return r;
    return read_exact(NULL, 2, NULL); /* CRLF */
  }
  if (t == '*') {
    if (len < 0) {
      emit(o, "(nil)", 5);
      return 0;
    }
    if (len == 0 && depth == 0) emit(o, "(empty array)", 13);
    if (depth > 8) return -EPROTO;
    for (long long i = 0; i < len; i++) {
      if (i) emit(o, "\n  ", 3);
      if ((r = read_reply(o, depth + 1)) < 0) return r;
    }
    return 0;
  }
  return -EPROTO;
}

/* ---- writing one command ---- */

static int write_all(const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? -errno : -EPIPE;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One text command -> RESP array appended to wbuf at *outn. Returns 1 (encoded), 0 (blank
 * line) or a negative errno. */
static int64_t encode(const char *in, size_t n, size_t *outn) {
  const char *args[64];
  size_t lens[64];
  int argc = 0;
  const char *p = in, *end = in + n;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    if (p == end) break;
    if (argc == 64) return -E2BIG;
    if (*p == '"') {
      const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
      if (!q) return -EINVAL;
      args[argc] = p + 1;
      lens[argc++] = (size_t)(q - p - 1);
      p = q + 1;
    } else {
      const char *q = p;
      while (q < end && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') q++;
      args[argc] = p;
      lens[argc++] = (size_t)(q - p);
      p = q;
    }
  }
  if (!argc) return 0;
  size_t w = *outn;
  if (w + 32 > sizeof wbuf) return -E2BIG;
  w += (size_t)snprintf(wbuf + w, sizeof wbuf - w, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    if (w + lens[i] + 32 > sizeof wbuf) return -E2BIG;
    w += (size_t)snprintf(wbuf + w, sizeof wbuf - w, "$%zu\r\n", lens[i]);
    memcpy(wbuf + w, args[i], lens[i]);
    w += lens[i];
    wbuf[w++] = '\r';
    wbuf[w++] = '\n';
  }
  *outn = w;
  return 1;
}

static int64_t connect_now(char *out, size_t cap) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) {
    /* A backend whose config has no network.allow gets no sockets at all (ENOSYS). */
    int e = errno;
    return fail(out, cap, e, e == ENOSYS || e == EACCES ? "socket (this backend has no network.allow) for" : "socket for");
  }
  if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int e = errno;
    close(s);
    return fail(out, cap, e, e == EACCES ? "connect (not in this backend's network.allow)" : "connect");
  }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd = s;
  connects++;
  rpos = rlen = 0;
  /* Remember which server-side client this instance is (shows one connection per instance). */
  static const char id_cmd[] = "*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";
  char idb[32];
  struct out o = {idb, 0, sizeof idb - 1, 0};
  int r = write_all(id_cmd, sizeof id_cmd - 1);
  if (r == 0) r = read_reply(&o, 0);
  if (r < 0) {
    disconnect();
    return fail(out, cap, -r, "handshake with");
  }
  idb[o.len] = 0;
  client_id = atoll(idb);
  return 0;
}

static int64_t command(const void *in, size_t in_len, void *outp, size_t cap) {
  if (!farcall_caller_ok(in, in_len) || !farcall_caller_ok(outp, cap)) return -EFAULT;
  char *out = outp;
  if (cap) out[0] = 0;
  /* Encode every line into wbuf (a pipeline). */
  size_t mlen = 0;
  int count = 0;
  for (const char *p = in, *end = p + in_len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    int64_t r = encode(p, (size_t)(le - p), &mlen);
    if (r < 0) return fail(out, cap, (int)-r, "bad command for");
    count += (int)r;
    p = le + 1;
  }
  if (!count) return fail(out, cap, EINVAL, "no command for");
  /* One retry, only when the connection was reused and not one reply came back (the server
   * closed an idle connection): nothing of the pipeline ran then. */
  for (int attempt = 0;; attempt++) {
    int fresh = fd < 0;
    if (fd < 0) {
      int64_t r = connect_now(out, cap);
      if (r < 0) return r;
    }
    struct out o = {out, 0, cap, 0};
    int r = write_all(wbuf, mlen), got = 0;
    for (; r == 0 && got < count; got++) {
      if (got) emit(&o, "\n", 1);
      r = read_reply(&o, 0);
    }
    if (r == 0) {
      commands += (unsigned long long)count;
      return (int64_t)o.len;
    }
    disconnect();
    if (fresh || attempt || got > 1) return fail(out, cap, -r, "talking to");
  }
}

static int64_t info(const void *in, size_t in_len, void *out, size_t cap) {
  (void)in;
  (void)in_len;
  if (!farcall_caller_ok(out, cap)) return -EFAULT;
  int n = snprintf(out, cap, "instance=%d connected=%d client_id=%lld commands=%llu connects=%llu", farcall_instance(),
                   fd >= 0, client_id, commands, connects);
  return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int main(void) {
  const char *a = getenv("REDIS_ADDR");
  if (a && strlen(a) < sizeof addr_text) strcpy(addr_text, a);
  char host[64];
  strcpy(host, addr_text);
  char *colon = strrchr(host, ':');
  int port = 6379;
  if (colon) {
    *colon = 0;
    port = atoi(colon + 1);
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "REDIS_ADDR must be a numeric ip:port, got %s\n", addr_text);
    return 2;
  }
  /* No connection here: each instance opens its own in its first call. */
  FARCALL_EXPORT(command);
  FARCALL_EXPORT(info);
  farcall_serve();
}
