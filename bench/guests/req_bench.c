/* The request program of the fork benchmark (bench/forks.ts). Requests:
 *   echo:TEXT   answers TEXT
 *   dirty:N     writes one byte in each of N distinct pages of a static buffer (N <= 2048),
 *               then answers "ok"; the reset afterwards has those pages to rewrite
 * Initialization (before farcall_ready) touches the whole buffer, so its pages are present in
 * the master and the forks' first writes are copy-on-write of real pages, not zero-fill. */
#include <stdlib.h>
#include <string.h>

#include "farcall.h"

#define PAGES 2048
static unsigned char pages[PAGES * 4096] __attribute__((aligned(4096)));

int main(void) {
  for (size_t i = 0; i < sizeof pages; i += 4096) pages[i] = 7;
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  char cmd[256] = {0};
  memcpy(cmd, req, len < sizeof cmd - 1 ? len : sizeof cmd - 1);
  if (!strncmp(cmd, "echo:", 5)) farcall_respond((char *)req + 5, len - 5);
  if (!strncmp(cmd, "dirty:", 6)) {
    long n = atol(cmd + 6);
    if (n < 0 || n > PAGES) farcall_fail("dirty: 0..2048");
    volatile unsigned char *p = pages;
    for (long i = 0; i < n; i++) p[(size_t)i * 4096] = (unsigned char)(i + 1);
    farcall_respond("ok", 2);
  }
  farcall_fail("unknown command");
  return 0;
}
