/* The request program of the snapshot benchmark (bench/snapshot.ts). Initialization writes
 * argv[1] MiB of non-zero data (a different word per page, so no page is a copy of another),
 * then calls farcall_ready(). Requests: echo:TEXT answers TEXT; sum answers a checksum of the
 * data (a snapshot's copy must give the same). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farcall.h"

int main(int argc, char **argv) {
  size_t bytes = (size_t)(argc > 1 ? atol(argv[1]) : 1) << 20;
  uint64_t *data = malloc(bytes);
  if (!data) return 1;
  for (size_t i = 0; i < bytes / 8; i++) data[i] = i * 0x9e3779b97f4a7c15ull + 1;
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  if (len >= 5 && !memcmp(req, "echo:", 5)) farcall_respond((char *)req + 5, len - 5);
  if (len == 3 && !memcmp(req, "sum", 3)) {
    uint64_t s = 0;
    for (size_t i = 0; i < bytes / 8; i += 512) s += data[i];
    char out[32];
    int n = snprintf(out, sizeof out, "%llu", (unsigned long long)s);
    farcall_respond(out, (size_t)n);
  }
  farcall_fail("unknown command");
  return 0;
}
