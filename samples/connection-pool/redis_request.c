/* connection-pool sample, the request program (musl): runs Redis commands through the
 * backend's pooled connections. A request is one or more commands, one a line, run in one
 * call on one backend instance (pipelined on its connection); the reply is one line of text
 * per command (array elements on indented continuation lines), or "ERR <explanation> (-errno)"
 * when the backend could not run them, e.g. "ERR connect (not in this backend's
 * network.allow) 127.0.0.1:6390: Permission denied (-13)". The request "INFO-BACKEND" answers
 * the instance's own info ("instance=I connected=1 client_id=ID commands=N connects=N"). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "farcall.h"

typedef int64_t (*entry_fn)(const void *in, size_t in_len, void *out, size_t cap);

static entry_fn redis_command, redis_info;
static char reply[256 << 10];

int main(void) {
  redis_command = (entry_fn)farcall_lookup("redis.command");
  redis_info = (entry_fn)farcall_lookup("redis.info");
  farcall_ready();

  size_t w = 0;
  if (!redis_command || !redis_info) {
    static const char m[] = "ERR the redis backend is not attached";
    farcall_respond(m, sizeof m - 1);
  }
  char *req;
  size_t len;
  farcall_request((void **)&req, &len);
  /* The whole request in one call: its commands run pipelined on one backend instance (one
   * Redis connection), and the backend writes the replies straight into our buffer. */
  int64_t r;
  if (len >= 12 && !memcmp(req, "INFO-BACKEND", 12)) r = redis_info(req, len, reply, sizeof reply);
  else r = redis_command(req, len, reply, sizeof reply);
  if (r < 0) {
    reply[sizeof reply - 1] = 0;
    static char err[1024];
    int n = snprintf(err, sizeof err, "ERR %s (%lld)", reply[0] ? reply : "backend call failed", (long long)r);
    farcall_respond(err, (size_t)n);
  }
  w = (size_t)r;
  farcall_respond(reply, w);
}
