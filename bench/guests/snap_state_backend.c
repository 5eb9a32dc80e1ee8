/* The backend of the snapshot benchmark (bench/snapshot.ts): state of a chosen size.
 *   grow(in = 8-byte MiB count)   allocates that much more state and fills it (non-zero);
 *                                 answers the total MiB held
 *   sum()                         a checksum of the state (a restored copy must give the same) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "farcall.h"

static uint64_t *blocks[1024];
static size_t nblocks;

static int64_t grow(const void *in, size_t in_len, void *out, size_t out_cap) {
  int64_t mib;
  if (in_len != 8 || out_cap < 8 || !farcall_caller_ok(in, 8) || !farcall_caller_ok(out, 8)) return -22;
  memcpy(&mib, in, 8);
  for (int64_t k = 0; k < mib && nblocks < 1024; k++) {
    uint64_t *b = malloc(1 << 20);
    if (!b) return -12;
    for (size_t i = 0; i < (1 << 20) / 8; i++) b[i] = (nblocks << 20) + i + 1;
    blocks[nblocks++] = b;
  }
  int64_t total = (int64_t)nblocks;
  memcpy(out, &total, 8);
  return 8;
}

static int64_t sum(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in, (void)in_len;
  if (out_cap < 8 || !farcall_caller_ok(out, 8)) return -22;
  uint64_t s = 0;
  for (size_t k = 0; k < nblocks; k++)
    for (size_t i = 0; i < (1 << 20) / 8; i += 512) s += blocks[k][i];
  memcpy(out, &s, 8);
  return 8;
}

int main(void) {
  FARCALL_EXPORT(grow);
  FARCALL_EXPORT(sum);
  farcall_serve();
  return 0;
}
