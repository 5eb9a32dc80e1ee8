/* A backend that tries to make a thread, at start and in a call: backends get no threads
 * (docs/threads.md), and pthread_create must fail cleanly with ENOSYS both times. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "farcall.h"

static const char *at_start;

static void *nothing(void *arg) { return arg; }

static const char *spawn(void) {
  pthread_t t;
  int err = pthread_create(&t, NULL, nothing, NULL);
  return err ? strerrorname_np(err) : "created";
}

/* Host convention: answers "start ERR, call ERR". */
static int64_t host_spawn(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in;
  (void)in_len;
  char msg[64] = "start ";
  strcat(msg, at_start);
  strcat(msg, ", call ");
  strcat(msg, spawn());
  size_t n = strlen(msg);
  if (out_cap < n || !farcall_caller_ok(out, n)) return -22;
  memcpy(out, msg, n);
  return (int64_t)n;
}

int main(void) {
  at_start = spawn();
  FARCALL_EXPORT(host_spawn);
  farcall_serve();
}
