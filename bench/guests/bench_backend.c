/* The backend of the gate benchmark (bench/gate.ts). Entries:
 *   nop()              returns 0: the bare cost of a far call
 *   touch(buf, len)    validates the caller's buffer, then reads and rewrites every byte of it in
 *                      place (zero-copy: the caller sees the change without any copy back);
 *                      returns a checksum of what it read
 *   host_echo(in, in_len, out, out_cap)   the host byte-buffer convention: copies in to out
 * State persists across calls (a call counter), as in any backend. */
#include <stdint.h>
#include <string.h>

#include "farcall.h"

static int64_t calls;

static int64_t nop(void) { return 0; }

static int64_t touch(unsigned char *buf, size_t len) {
  if (!farcall_caller_ok(buf, len)) return -14;
  uint64_t sum = 0;
  for (size_t i = 0; i < len; i++) {
    sum += buf[i];
    buf[i] = (unsigned char)(buf[i] + 1);
  }
  calls++;
  return (int64_t)(sum & 0x7fffffff);
}

static int64_t host_echo(const void *in, size_t in_len, void *out, size_t out_cap) {
  if (!farcall_caller_ok(in, in_len) || !farcall_caller_ok(out, out_cap)) return -14;
  if (in_len > out_cap) return -28;
  memcpy(out, in, in_len);
  calls++;
  return (int64_t)in_len;
}

int main(void) {
  FARCALL_EXPORT(nop);
  FARCALL_EXPORT(touch);
  FARCALL_EXPORT(host_echo);
  farcall_serve();
}
