/* A request program: adds the number it is sent to the backend's counter through the generated
 * C client and answers "total=N". */
#include <stdio.h>
#include <stdlib.h>

#include "counter_farcall.h"
#include "farcall.h"

static uint64_t arena[1024], reply[1024];
static char text[128];

int main(void) {
  int connected = smoke_Counter_connect("counter");
  farcall_ready();
  void *req;
  size_t len;
  farcall_request(&req, &len);
  if (connected) farcall_respond(text, (size_t)snprintf(text, sizeof text, "connect failed: %s", farcall_rpc_last_error()));
  char num[32] = {0};
  for (size_t i = 0; i < len && i < sizeof num - 1; i++) num[i] = ((char *)req)[i];
  fc_builder b;
  fc_builder_init(&b, arena, sizeof arena);
  size_t n;
  const void *buf = fc_finish(&b, smoke_AddRequest_create(&b, atoi(num)), &n);
  int64_t r = smoke_Counter_Add(buf, n, reply, sizeof reply);
  if (r < 0) farcall_respond(text, (size_t)snprintf(text, sizeof text, "error %s", farcall_rpc_strerror(r)));
  farcall_respond(text, (size_t)snprintf(text, sizeof text, "total=%d", smoke_AddReply_total(smoke_AddReply_as_root(reply))));
}
