/* A C (musl) request program that uses the key-value backend through the generated C client
 * (generated/c/kv_farcall.h): it builds requests in its own arena with the generated
 * builders, calls the backend, and reads the replies in place with the generated readers.
 * Commands, one per request: put KEY VALUE | get KEY | del KEY | scan PREFIX [LIMIT] | bench SIZE N */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "farcall.h"
#include "kv_farcall.h"

static int connected;
static farcall_rpc_fn raw_get; /* the backend's plain byte-buffer lookup, for bench/stubs.ts */
static char connect_error[512];
static uint64_t arena[16384 / 8];   /* requests are built here */
static uint64_t reply[65536 / 8];   /* replies land here */
static char text[131072];

#define ANSWER(...) farcall_respond(text, (size_t)snprintf(text, sizeof text, __VA_ARGS__))

static void fail_call(const char *what, int64_t r) {
  int32_t status, code;
  const char *message = farcall_rpc_strerror(r);
  if (r == FARCALL_RPC_E_FAILED) farcall_rpc_error(reply, sizeof reply, &status, &code, &message);
  ANSWER("error %s %lld %s", what, (long long)r, message);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t get(fc_builder *b, const char *key) {
  fc_builder_reset(b);
  fc_ref req = kv_GetRequest_create(b, fc_create_cstring(b, key));
  size_t len;
  const void *buf = fc_finish(b, req, &len);
  if (!buf) return FARCALL_RPC_E_BUILD;
  return kv_KeyValue_Get(buf, len, reply, sizeof reply);
}

int main(void) {
  connected = kv_KeyValue_connect("kv");
  raw_get = (farcall_rpc_fn)farcall_lookup("kv.raw_get");
  if (connected) snprintf(connect_error, sizeof connect_error, "%s", farcall_rpc_last_error());
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  char cmd[4096] = {0}, a[4096] = {0}, b2[4096] = {0};
  char line[8192] = {0};
  memcpy(line, req, len < sizeof line - 1 ? len : sizeof line - 1);
  sscanf(line, "%4095s %4095s %4095s", cmd, a, b2);
  if (connected) ANSWER("error connect %d %s", connected, connect_error);

  fc_builder b;
  fc_builder_init(&b, arena, sizeof arena);
  size_t n;
  const void *buf;
  int64_t r;
  if (!strcmp(cmd, "put")) {
    fc_ref key = fc_create_cstring(&b, a);
    fc_ref value = fc_create_vector(&b, b2, strlen(b2), 1, 1);
    buf = fc_finish(&b, kv_PutRequest_create(&b, key, value), &n);
    if ((r = kv_KeyValue_Put(buf, n, reply, sizeof reply)) < 0) fail_call("put", r);
    const kv_PutResponse_table_t *t = kv_PutResponse_as_root(reply);
    ANSWER("ok replaced=%d size=%llu", kv_PutResponse_replaced(t), (unsigned long long)kv_PutResponse_size(t));
  }
  if (!strcmp(cmd, "get")) {
    if ((r = get(&b, a)) < 0) fail_call("get", r);
    const kv_GetResponse_table_t *t = kv_GetResponse_as_root(reply);
    if (!kv_GetResponse_found(t)) ANSWER("missing");
    ANSWER("found %.*s", (int)kv_GetResponse_value_len(t), (const char *)kv_GetResponse_value(t));
  }
  if (!strcmp(cmd, "del")) {
    buf = fc_finish(&b, kv_DeleteRequest_create(&b, fc_create_cstring(&b, a)), &n);
    if ((r = kv_KeyValue_Delete(buf, n, reply, sizeof reply)) < 0) fail_call("del", r);
    ANSWER("deleted %d", kv_DeleteResponse_deleted(kv_DeleteResponse_as_root(reply)));
  }
  if (!strcmp(cmd, "scan")) {
    fc_ref prefix = strcmp(a, "-") ? fc_create_cstring(&b, a) : 0;
    buf = fc_finish(&b, kv_ScanRequest_create(&b, 0, prefix, (uint32_t)atoi(b2)), &n);
    if ((r = kv_KeyValue_Scan(buf, n, reply, sizeof reply)) < 0) fail_call("scan", r);
    const kv_ScanResponse_table_t *t = kv_ScanResponse_as_root(reply);
    size_t at = 0;
    text[0] = 0;
    for (size_t i = 0; i < kv_ScanResponse_entries_len(t) && at < sizeof text - 200; i++) {
      const kv_Entry_table_t *e = kv_ScanResponse_entries_at(t, i);
      at += (size_t)snprintf(text + at, sizeof text - at, "%s%s=%.*s", i ? "," : "", kv_Entry_key(e), (int)kv_Entry_value_len(e),
                             (const char *)kv_Entry_value(e));
    }
    at += (size_t)snprintf(text + at, sizeof text - at, " more=%d", kv_ScanResponse_more(t));
    farcall_respond(text, at);
  }
  if (!strcmp(cmd, "bench")) {
    /* N raw_get and N stub Get calls, alternating, on the value a previous "bench" put left (by
     * the C++ client or the host); answers "tsc_per_us raw ticks... stub ticks...". */
    size_t size = (size_t)atol(a);
    int count = atoi(b2);
    char key[64];
    snprintf(key, sizeof key, "bench%zu", size);
    static uint64_t raw_ticks[4000], stub_ticks[4000];
    if (count > 4000) count = 4000;
    int64_t t0 = now_ns();
    uint64_t c0 = __rdtsc();
    for (int i = 0; i < count; i++) {
      uint64_t s = __rdtsc();
      r = raw_get(key, strlen(key), reply, sizeof reply);
      raw_ticks[i] = __rdtsc() - s;
      if (r != (int64_t)size) fail_call("raw_get", r);
      s = __rdtsc();
      r = get(&b, key);
      size_t got = r > 0 ? kv_GetResponse_value_len(kv_GetResponse_as_root(reply)) : 0;
      stub_ticks[i] = __rdtsc() - s;
      if (got != size) fail_call("get", r);
    }
    double tsc_per_us = (double)(__rdtsc() - c0) / ((double)(now_ns() - t0) / 1000.0);
    size_t at = (size_t)snprintf(text, sizeof text, "%f raw", tsc_per_us);
    for (int i = 0; i < count && at < sizeof text - 24; i++) at += (size_t)snprintf(text + at, sizeof text - at, " %llu", (unsigned long long)raw_ticks[i]);
    at += (size_t)snprintf(text + at, sizeof text - at, " stub");
    for (int i = 0; i < count && at < sizeof text - 24; i++) at += (size_t)snprintf(text + at, sizeof text - at, " %llu", (unsigned long long)stub_ticks[i]);
    farcall_respond(text, at);
  }
  farcall_fail("unknown command");
  return 0;
}
