/* kv-store sample, the backend: one persistent key-value table that every request fork
 * reads and writes through the gate. Built with farcall_add_program(... BACKEND) (glibc,
 * static-PIE, placed in the backend region); its memory persists across calls.
 *
 * Entries called from request programs (caller pointers, each checked with
 * farcall_caller_ok before use; results are >= 0 on success or a negative errno):
 *   get(key, klen, out, cap)        -> length of the value (copies min(len, cap) bytes), -ENOENT
 *   put(key, klen, val, vlen)       -> 0
 *   del(key, klen)                  -> 1 if the key existed, 0 if not
 *   incr(key, klen, delta, *result) -> 0 and *result = new value; -EINVAL if not an integer
 *   count()                         -> number of keys
 * Entries with the host byte-buffer convention (TypeScript: backend.call(entry, bytes)):
 *   exec: one text command ("GET k", "PUT k v", "INCR k [n]", "DEL k", "COUNT"), the reply as
 *         the request program would answer it;
 *   info: JSON counters. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farcall.h"

#define MAX_KEY 250
#define MAX_VALUE (1u << 20)

struct slot {
  char *key; /* NULL: empty; TOMB: deleted */
  char *val;
  uint32_t klen, vlen;
};

static char tomb_marker;
#define TOMB (&tomb_marker)

static struct slot *table;
static size_t cap, used, live; /* used counts live + tombstones */
static struct {
  uint64_t gets, hits, puts, dels, incrs, rejected;
} counters;

static uint64_t hash(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
  return h;
}

/* The slot holding key, or NULL. */
static struct slot *find(const char *k, size_t n) {
  for (size_t i = hash(k, n) & (cap - 1);; i = (i + 1) & (cap - 1)) {
    struct slot *s = &table[i];
    if (!s->key) return NULL;
    if (s->key != TOMB && s->klen == n && !memcmp(s->key, k, n)) return s;
  }
}

static int grow(void) {
  size_t ncap = cap ? cap * 2 : 1024;
  struct slot *nt = calloc(ncap, sizeof *nt);
  if (!nt) return -ENOMEM;
  for (size_t i = 0; i < cap; i++) {
    struct slot *s = &table[i];
    if (!s->key || s->key == TOMB) continue;
    size_t j = hash(s->key, s->klen) & (ncap - 1);
    while (nt[j].key) j = (j + 1) & (ncap - 1);
    nt[j] = *s;
  }
  free(table);
  table = nt;
  cap = ncap;
  used = live;
  return 0;
}

/* The slot for key, created (with no value) when absent. */
static struct slot *upsert(const char *k, size_t n, int *err) {
  struct slot *s = find(k, n);
  if (s) return s;
  if ((used + 1) * 10 > cap * 7 && (*err = grow()) < 0) return NULL;
  size_t i = hash(k, n) & (cap - 1);
  while (table[i].key && table[i].key != TOMB) i = (i + 1) & (cap - 1);
  s = &table[i];
  char *copy = malloc(n ? n : 1);
  if (!copy) {
    *err = -ENOMEM;
    return NULL;
  }
  memcpy(copy, k, n);
  if (!s->key) used++;
  s->key = copy;
  s->klen = (uint32_t)n;
  s->val = NULL;
  s->vlen = 0;
  live++;
  return s;
}

static int set_value(struct slot *s, const char *v, size_t n) {
  char *copy = malloc(n ? n : 1);
  if (!copy) return -ENOMEM;
  memcpy(copy, v, n);
  free(s->val);
  s->val = copy;
  s->vlen = (uint32_t)n;
  return 0;
}

static int key_ok(const char *k, size_t n) { return n >= 1 && n <= MAX_KEY && farcall_caller_ok(k, n); }

/* ---- core operations (pointers already validated) ---- */

static int64_t do_get(const char *k, size_t kn, char *out, size_t ocap) {
  counters.gets++;
  struct slot *s = find(k, kn);
  if (!s) return -ENOENT;
  counters.hits++;
  memcpy(out, s->val, s->vlen < ocap ? s->vlen : ocap);
  return s->vlen;
}

static int64_t do_put(const char *k, size_t kn, const char *v, size_t vn) {
  counters.puts++;
  int err = 0;
  struct slot *s = upsert(k, kn, &err);
  if (!s) return err;
  return set_value(s, v, vn);
}

static int64_t do_del(const char *k, size_t kn) {
  counters.dels++;
  struct slot *s = find(k, kn);
  if (!s) return 0;
  free(s->key);
  free(s->val);
  s->key = TOMB;
  s->val = NULL;
  live--;
  return 1;
}

static int parse_i64(const char *p, size_t n, int64_t *v) {
  if (n == 0 || n > 20) return 0;
  char b[24];
  memcpy(b, p, n);
  b[n] = 0;
  char *end;
  errno = 0;
  long long x = strtoll(b, &end, 10);
  if (errno || *end || end == b) return 0;
  *v = x;
  return 1;
}

static int64_t do_incr(const char *k, size_t kn, int64_t delta, int64_t *result) {
  counters.incrs++;
  int err = 0;
  struct slot *s = find(k, kn);
  int64_t v = 0;
  if (s && !parse_i64(s->val, s->vlen, &v)) return -EINVAL;
  if ((delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta)) return -EOVERFLOW;
  v += delta;
  if (!s && !(s = upsert(k, kn, &err))) return err;
  char b[24];
  int n = snprintf(b, sizeof b, "%lld", (long long)v);
  if ((err = set_value(s, b, (size_t)n)) < 0) return err;
  *result = v;
  return 0;
}

/* ---- entries for request programs: every caller pointer is checked ---- */

static int64_t get(const char *k, size_t kn, char *out, size_t ocap) {
  if (!key_ok(k, kn) || !farcall_caller_ok(out, ocap)) return counters.rejected++, -EFAULT;
  return do_get(k, kn, out, ocap);
}

static int64_t put(const char *k, size_t kn, const char *v, size_t vn) {
  if (!key_ok(k, kn) || vn > MAX_VALUE || !farcall_caller_ok(v, vn)) return counters.rejected++, -EFAULT;
  return do_put(k, kn, v, vn);
}

static int64_t del(const char *k, size_t kn) {
  if (!key_ok(k, kn)) return counters.rejected++, -EFAULT;
  return do_del(k, kn);
}

static int64_t incr(const char *k, size_t kn, int64_t delta, int64_t *result) {
  if (!key_ok(k, kn) || !farcall_caller_ok(result, sizeof *result)) return counters.rejected++, -EFAULT;
  return do_incr(k, kn, delta, result);
}

static int64_t count(void) { return (int64_t)live; }

/* ---- host-convention entries ---- */

static int64_t reply(char *out, size_t ocap, const char *fmt, long long x) {
  int n = snprintf(out, ocap, fmt, x);
  return n < 0 || (size_t)n >= ocap ? -ENOSPC : n;
}

/* exec: the text protocol of the request program, run directly on the table. */
static int64_t exec(const void *in, size_t in_len, void *outp, size_t ocap) {
  if (!farcall_caller_ok(in, in_len) || !farcall_caller_ok(outp, ocap)) return -EFAULT;
  const char *p = in, *end = p + in_len;
  char *out = outp;
  const char *sp = memchr(p, ' ', in_len);
  size_t cn = sp ? (size_t)(sp - p) : in_len;
  const char *k = sp ? sp + 1 : end;
  const char *ke = memchr(k, ' ', (size_t)(end - k));
  if (!ke) ke = end;
  size_t kn = (size_t)(ke - k);
  const char *arg = ke < end ? ke + 1 : end;
  size_t an = (size_t)(end - arg);
#define CMD(s) (cn == sizeof(s) - 1 && !memcmp(p, s, cn))
  if (CMD("COUNT")) return reply(out, ocap, "INT %lld", (long long)live);
  if (kn < 1 || kn > MAX_KEY) return reply(out, ocap, "ERR expected COUNT or GET|PUT|INCR|DEL key", 0);
  if (CMD("GET")) {
    if (ocap < 6) return -ENOSPC;
    int64_t r = do_get(k, kn, out + 6, ocap - 6);
    if (r == -ENOENT) return reply(out, ocap, "NIL", 0);
    if ((size_t)r > ocap - 6) return -ENOSPC;
    memcpy(out, "VALUE ", 6);
    return 6 + r;
  }
  if (CMD("PUT")) {
    int64_t r = do_put(k, kn, arg, an);
    return r < 0 ? r : reply(out, ocap, "OK", 0);
  }
  if (CMD("DEL")) return reply(out, ocap, do_del(k, kn) ? "DELETED" : "NIL", 0);
  if (CMD("INCR")) {
    int64_t d = 1, v = 0;
    if (an && !parse_i64(arg, an, &d)) return reply(out, ocap, "ERR increment is not an integer", 0);
    int64_t r = do_incr(k, kn, d, &v);
    if (r == -EINVAL) return reply(out, ocap, "ERR value is not an integer", 0);
    if (r == -EOVERFLOW) return reply(out, ocap, "ERR increment would overflow", 0);
    return r < 0 ? r : reply(out, ocap, "INT %lld", (long long)v);
  }
#undef CMD
  return reply(out, ocap, "ERR unknown command", 0);
}

static int64_t info(const void *in, size_t in_len, void *out, size_t ocap) {
  (void)in;
  (void)in_len;
  if (!farcall_caller_ok(out, ocap)) return -EFAULT;
  int n = snprintf(out, ocap,
                   "{\"keys\":%zu,\"capacity\":%zu,\"gets\":%llu,\"hits\":%llu,\"puts\":%llu,\"dels\":%llu,"
                   "\"incrs\":%llu,\"rejected\":%llu}",
                   live, cap, (unsigned long long)counters.gets, (unsigned long long)counters.hits,
                   (unsigned long long)counters.puts, (unsigned long long)counters.dels,
                   (unsigned long long)counters.incrs, (unsigned long long)counters.rejected);
  return n < 0 || (size_t)n >= ocap ? -ENOSPC : n;
}

int main(void) {
  if (grow() < 0) return 1;
  FARCALL_EXPORT(get);
  FARCALL_EXPORT(put);
  FARCALL_EXPORT(del);
  FARCALL_EXPORT(incr);
  FARCALL_EXPORT(count);
  FARCALL_EXPORT(exec);
  FARCALL_EXPORT(info);
  farcall_serve();
}
