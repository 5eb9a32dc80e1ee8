/* farcall guest SDK: the C API for programs that run inside farcall VMs.
 *
 * Usable from C and C++, with glibc or musl, in static programs built by
 * farcall_add_program() (guest-sdk/cmake/FarcallGuest.cmake).
 *
 * Request programs (run as a master, then forked per request):
 *
 *     int main(void) {
 *         load_tables();                 // runs once, in the master
 *         farcall_ready();               // the master freezes here; forks start here
 *         for (;;) {
 *             void *req; size_t len;
 *             farcall_request(&req, &len);   // this fork's request, inside guest memory
 *             ... build the reply ...
 *             farcall_respond(reply, reply_len);  // hand it back; the fork is then reset
 *         }
 *     }
 *
 * Everything after farcall_ready() is per request: the VMM puts the fork back into the
 * state of farcall_ready() after each farcall_respond(), so nothing written during one
 * request (heap, stack, globals, registers) survives into the next.
 */
#ifndef FARCALL_H
#define FARCALL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* System-call numbers of the farcall ABI (the VMM answers them; Linux does not have them). */
#define FARCALL_SYS_READY 0x4600
#define FARCALL_SYS_RESPOND 0x4601
#define FARCALL_SYS_FAIL 0x4602

/* Default size of the request arena (the guest buffer requests are written into). */
#ifndef FARCALL_ARENA_SIZE
#define FARCALL_ARENA_SIZE (1u << 20)
#endif

/* Marks the end of initialization. In a master, the VMM freezes the VM here; forks resume
 * from this point, with the first request already in the arena. Returns 0 in a fork. */
int farcall_ready(void);

/* The current request: a pointer into guest memory and its length. Valid until
 * farcall_respond(). Never blocks: the request is in place before the fork runs. */
void farcall_request(void **buf, size_t *len);

/* Hands the response back to the host and ends the request; does not return in a fork
 * (the VMM resets the fork to farcall_ready()). `buf` may point anywhere in guest memory,
 * including into the request arena. */
void farcall_respond(const void *buf, size_t len);

/* Ends the request with an application error that the host sees as a RequestFailed error
 * carrying `message`. Does not return in a fork. */
void farcall_fail(const char *message);

#ifdef __cplusplus
}
#endif
#endif /* FARCALL_H */
