/* A hostile tenant's request program (test/security/overload.test.ts): every request calls a
 * backend entry that holds the instance a while, back to back, to keep other pools' callers of
 * that instance out. argv: "nap N MS" (N calls of counter.nap(MS)) or "spin N" (N calls of
 * counter.spin, each to the call timeout). Answers the last result; the request is not read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farcall.h"

typedef int64_t (*fn0)(void);
typedef int64_t (*fn1)(int64_t);

int main(int argc, char **argv) {
  fn1 nap = (fn1)farcall_lookup("counter.nap");
  fn0 spin = (fn0)farcall_lookup("counter.spin");
  int napping = argc > 1 && !strcmp(argv[1], "nap");
  long n = argc > 2 ? atol(argv[2]) : 0, ms = argc > 3 ? atol(argv[3]) : 0;
  farcall_ready();
  int64_t r = 0;
  for (long i = 0; i < n; i++) r = napping ? nap(ms) : spin();
  static char reply[32];
  farcall_respond(reply, (size_t)snprintf(reply, sizeof reply, "%lld", (long long)r));
}
