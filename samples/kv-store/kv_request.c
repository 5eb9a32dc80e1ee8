/* kv-store sample, the request program (musl): every request runs in a fresh fork of this
 * program, frozen at farcall_ready(), and is reset afterwards; the data lives in the kv
 * backend, reached through the gate.
 *
 * Requests (text):            Replies:
 *   GET key                     VALUE <bytes> | NIL
 *   PUT key value...            OK             (the value is everything after "key ")
 *   DEL key                     DELETED | NIL
 *   INCR key [delta]            INT <n>        | ERR value is not an integer
 *   COUNT                       INT <number of keys>
 *   SEEN                        INT <requests this fork's memory has seen>: always 1, since
 *                               every request starts from the master's state (isolation probe)
 * Anything malformed answers "ERR ...". */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farcall.h"

typedef int64_t (*get_fn)(const char *key, size_t klen, char *out, size_t cap);
typedef int64_t (*put_fn)(const char *key, size_t klen, const char *val, size_t vlen);
typedef int64_t (*del_fn)(const char *key, size_t klen);
typedef int64_t (*incr_fn)(const char *key, size_t klen, int64_t delta, int64_t *result);
typedef int64_t (*count_fn)(void);

static get_fn kv_get;
static put_fn kv_put;
static del_fn kv_del;
static incr_fn kv_incr;
static count_fn kv_count;

/* Per-request state: the fork is reset after every request, so these always start at 0. */
static int seen;
static char reply[(1u << 20) + 16];

#define ANSWER(...) farcall_respond(reply, (size_t)snprintf(reply, sizeof reply, __VA_ARGS__))

static const char *errtext(int64_t r) {
  switch (-r) {
    case EFAULT: return "bad key or buffer (1..250 bytes)";
    case ENOMEM: return "backend out of memory";
    case EINVAL: return "value is not an integer";
    case EOVERFLOW: return "increment would overflow";
    case 1001: return "backend fault (the call crashed; the instance was restored)";
    case 1002: return "backend timeout";
    case 1003: return "backend busy";
    case 1004: return "backend exited";
    default: return "backend error";
  }
}

int main(void) {
  /* Once, in the master: forks inherit the gate addresses. */
  kv_get = (get_fn)farcall_lookup("kv.get");
  kv_put = (put_fn)farcall_lookup("kv.put");
  kv_del = (del_fn)farcall_lookup("kv.del");
  kv_incr = (incr_fn)farcall_lookup("kv.incr");
  kv_count = (count_fn)farcall_lookup("kv.count");
  farcall_ready();

  if (!kv_get || !kv_put || !kv_del || !kv_incr || !kv_count) ANSWER("ERR the kv backend is not attached");
  seen++;
  char *req;
  size_t len;
  farcall_request((void **)&req, &len);
  /* Tolerate one trailing newline (curl, shells). */
  if (len && req[len - 1] == '\n') len--;
  if (len && req[len - 1] == '\r') len--;

  char *end = req + len;
  char *sp = memchr(req, ' ', len);
  size_t cn = sp ? (size_t)(sp - req) : len;
  char *key = sp ? sp + 1 : end;
  char *ke = memchr(key, ' ', (size_t)(end - key));
  if (!ke) ke = end;
  size_t kn = (size_t)(ke - key);
  char *arg = ke < end ? ke + 1 : end;
  size_t an = (size_t)(end - arg);
#define CMD(s) (cn == sizeof(s) - 1 && !memcmp(req, s, cn))

  if (CMD("SEEN")) ANSWER("INT %d", seen);
  if (CMD("COUNT")) ANSWER("INT %lld", (long long)kv_count());
  if (!(CMD("GET") || CMD("PUT") || CMD("DEL") || CMD("INCR"))) ANSWER("ERR unknown command (GET, PUT, DEL, INCR, COUNT, SEEN)");
  if (kn == 0) ANSWER("ERR missing key");
  if (kn > 250) ANSWER("ERR key longer than 250 bytes");

  if (CMD("GET")) {
    /* Zero-copy: the backend writes the value straight into our reply buffer. */
    int64_t r = kv_get(key, kn, reply + 6, sizeof reply - 6);
    if (r == -ENOENT) ANSWER("NIL");
    if (r < 0) ANSWER("ERR %s", errtext(r));
    if ((size_t)r > sizeof reply - 6) ANSWER("ERR value too large");
    memcpy(reply, "VALUE ", 6);
    farcall_respond(reply, 6 + (size_t)r);
  }
  if (CMD("PUT")) {
    /* The backend copies the value out of our request arena. */
    int64_t r = kv_put(key, kn, arg, an);
    if (r < 0) ANSWER("ERR %s", errtext(r));
    ANSWER("OK");
  }
  if (CMD("DEL")) {
    int64_t r = kv_del(key, kn);
    if (r < 0) ANSWER("ERR %s", errtext(r));
    ANSWER(r ? "DELETED" : "NIL");
  }
  /* INCR */
  int64_t delta = 1, v = 0;
  if (an) {
    char num[24], *e;
    if (an >= sizeof num) ANSWER("ERR increment is not an integer");
    memcpy(num, arg, an);
    num[an] = 0;
    errno = 0;
    delta = strtoll(num, &e, 10);
    if (errno || *e) ANSWER("ERR increment is not an integer");
  }
  int64_t r = kv_incr(key, kn, delta, &v);
  if (r < 0) ANSWER("ERR %s", errtext(r));
  ANSWER("INT %lld", (long long)v);
}
