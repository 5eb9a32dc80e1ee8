/* A backend whose initialization needs a service: it connects to 127.0.0.1:argv[1] before
 * farcall_serve() and exits if nobody listens, so the tests can make a restart fail (and then
 * succeed) by closing and reopening that port. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "farcall.h"

static int64_t ping(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in;
  (void)in_len;
  if (!farcall_caller_ok(out, out_cap) || out_cap < 4) return -14;
  memcpy(out, "pong", 4);
  return 4;
}

static unsigned short port;

/* Connects to the service and crashes with the socket open: the call is undone. */
/* A connection to the service: the socket, or -1000 - errno of the step that failed. */
static int connect_service(void) {
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1000 - errno;
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return -1000 - errno;
  return s;
}

static int64_t connect_crash(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in, (void)in_len, (void)out, (void)out_cap;
  int s = connect_service();
  if (s < 0) return s;
  *(volatile int *)8 = s; /* a fault: the call does not return */
  return 0;
}

/* Opens and closes a connection: 0, or the step that failed. */
static int64_t connect_ok(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in, (void)in_len, (void)out, (void)out_cap;
  int s = connect_service();
  if (s < 0) return s;
  close(s);
  return 0;
}

int main(int argc, char **argv) {
  port = (unsigned short)atoi(argc > 1 ? argv[1] : "0");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argc > 1 ? argv[1] : "0"));
  a.sin_addr.s_addr = htonl(0x7f000001);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) return 2;
  close(s);
  FARCALL_EXPORT(ping);
  FARCALL_EXPORT(connect_crash);
  FARCALL_EXPORT(connect_ok);
  farcall_serve();
}
