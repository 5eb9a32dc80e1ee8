/* A hostile request program for the tests (test/gen.test.ts): it calls the generated server's
 * entries directly, bypassing the stubs, with pointers into backend memory, out-of-range
 * lengths and random or mutated buffers. The skeleton must refuse all of it before the store's
 * code runs, and the backend must stay healthy.
 *   ptrs BASE       -> "name=result ..." for each hostile pointer case (BASE: where the backend's
 *                      memory appears, Backend.stats().memoryAt)
 *   fuzz SEED N     -> "ok=.. envelope=.. negative=.. other=.." over N mutated requests */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farcall.h"
#include "kv_farcall.h"


static farcall_rpc_fn fns[4];
static const char *names[4] = {"kv.KeyValue_Get", "kv.KeyValue_Put", "kv.KeyValue_Delete", "kv.KeyValue_Scan"};
static uint64_t arena[8192 / 8];
static uint64_t req_words[8192 / 8];
static uint64_t reply[16384 / 8];
static char text[16384];

static uint64_t rng;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* A valid request for method m, built in the arena; returns its length and start. */
static const uint8_t *valid(int m, size_t *len) {
  fc_builder b;
  fc_builder_init(&b, arena, sizeof arena);
  char key[16];
  snprintf(key, sizeof key, "f%u", (unsigned)(next() % 8));
  fc_ref k = fc_create_cstring(&b, key);
  fc_ref root;
  if (m == 0) root = kv_GetRequest_create(&b, k);
  else if (m == 1) {
    uint8_t v[32];
    memset(v, 'x', sizeof v);
    root = kv_PutRequest_create(&b, k, fc_create_vector(&b, v, next() % 32, 1, 1));
  } else if (m == 2) root = kv_DeleteRequest_create(&b, k);
  else root = kv_ScanRequest_create(&b, k, fc_create_cstring(&b, "f"), (uint32_t)(next() % 4));
  return fc_finish(&b, root, len);
}

int main(void) {
  for (int i = 0; i < 4; i++) fns[i] = (farcall_rpc_fn)farcall_lookup(names[i]);
  farcall_ready();
  void *req;
  size_t len;
  farcall_request(&req, &len);
  char cmd[64] = {0};
  unsigned long long seed = 1, count = 0;
  char line[256] = {0};
  memcpy(line, req, len < sizeof line - 1 ? len : sizeof line - 1);
  sscanf(line, "%63s %llu %llu", cmd, &seed, &count);
  for (int i = 0; i < 4; i++)
    if (!fns[i]) farcall_fail("entries not found");

  if (!strcmp(cmd, "ptrs")) {
    const uint64_t BACKEND_BASE = seed + 0x400000; /* its program's first page */
    size_t n;
    const uint8_t *ok = valid(0, &n);
    size_t at = 0;
#define CASE(name, expr) at += (size_t)snprintf(text + at, sizeof text - at, "%s=%lld ", name, (long long)(expr))
    CASE("valid", fns[0](ok, n, reply, sizeof reply));
    CASE("in_backend", fns[0]((const void *)BACKEND_BASE, 64, reply, sizeof reply));
    CASE("out_backend", fns[0](ok, n, (void *)BACKEND_BASE, 4096));
    CASE("out_backend_heap", fns[1](ok, n, (void *)(BACKEND_BASE + (1ull << 24)), 4096));
    CASE("in_kernel", fns[0]((const void *)0xffffff8000010000ull, 64, reply, sizeof reply));
    CASE("out_kernel", fns[0](ok, n, (void *)0xffffff8000010000ull, 64));
    CASE("in_null", fns[0](NULL, 64, reply, sizeof reply));
    CASE("in_len_huge", fns[0](ok, 1ull << 40, reply, sizeof reply));
    CASE("in_len_wrap", fns[0](ok, ~0ull - 8, reply, sizeof reply));
    CASE("in_len_past_end", fns[0](ok, (size_t)(0x7fffffffffffull - (uintptr_t)ok), reply, sizeof reply));
    CASE("out_cap_huge", fns[0](ok, n, reply, 1ull << 40));
    CASE("out_cap_past", fns[0](ok, n, reply, sizeof reply + (1ull << 30)));
    CASE("truncated", fns[0](ok, n / 2, reply, sizeof reply));
    CASE("empty", fns[0](ok, 0, reply, sizeof reply));
    CASE("tiny_out", fns[0](ok, n, reply, 8));
    CASE("zero_out", fns[0](ok, n, reply, 0));
    CASE("wrong_method", fns[3](ok, n, reply, sizeof reply)); /* a GetRequest is a valid ScanRequest shape, fine either way */
    farcall_respond(text, at);
  }
  if (!strcmp(cmd, "fuzz")) {
    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    unsigned long long ok = 0, envelope = 0, negative = 0, other = 0;
    uint8_t *buf = (uint8_t *)req_words;
    for (unsigned long long i = 0; i < count; i++) {
      int m = (int)(next() % 4);
      size_t n;
      const uint8_t *v = valid(m, &n);
      memcpy(buf, v, n);
      switch (next() % 4) {
        case 0: /* random bytes */
          n = next() % 256;
          for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)next();
          break;
        case 1: /* flip bytes */
          for (int j = 0, k = 1 + (int)(next() % 4); j < k; j++) buf[next() % n] ^= (uint8_t)(1u << (next() % 8));
          break;
        case 2: /* overwrite a 32-bit word with a wild offset */
          {
            uint32_t w = (uint32_t)next();
            if (next() & 1) w = (uint32_t)(next() % 64) - 32;
            memcpy(buf + (next() % (n - 3)), &w, 4);
          }
          break;
        default: /* truncate */
          n = next() % n;
          break;
      }
      int64_t r = fns[m](buf, n, reply, sizeof reply);
      if (r < 0) negative++;
      else if (fc_has_identifier(reply, (size_t)r, FARCALL_RPC_ID_ERROR)) envelope++;
      else if (fc_has_identifier(reply, (size_t)r, FARCALL_RPC_ID_REPLY)) ok++;
      else other++;
    }
    farcall_respond(text, (size_t)snprintf(text, sizeof text, "ok=%llu envelope=%llu negative=%llu other=%llu", ok, envelope, negative, other));
  }
  farcall_fail("unknown command");
  return 0;
}
