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

/* System-call numbers, FARCALL_E_* values a far call returns when the backend could not finish
 * it, and the layouts the VMM writes: farcall_abi.h, the one definition the VMM shares. */
#include "farcall_abi.h"

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

/* ---- Backends -------------------------------------------------------------------------
 *
 * A backend is a program built with farcall_add_program(NAME ... BACKEND): it is linked to
 * run in the backend region (static-PIE, placed in its own 16 GiB window from guest-virtual
 * 1 TiB up), disjoint from request programs and other backends, so pointers mean the same thing
 * on both sides. It initializes its state, registers entry
 * points, and calls farcall_serve(), which does not return: from then on its entry points
 * run when called, on the caller's vCPU, against the backend's memory, with the caller's
 * memory visible (zero-copy). Calls into one instance are serialized.
 *
 *     static int64_t add(int64_t x) { static int64_t total; return total += x; }
 *     int main(void) {
 *         FARCALL_EXPORT(add);            // or farcall_register("add", (void *)add);
 *         farcall_serve();
 *     }
 *
 * An entry point is a plain function of up to six integer or pointer arguments returning an
 * integer (SysV ABI, nothing on the stack). Entries called from the host (TypeScript) use
 * the byte-buffer convention farcall_entry_fn.
 */
typedef int64_t (*farcall_entry_fn)(const void *in, size_t in_len, void *out, size_t out_cap);

/* Registers `fn` under `name` (1..128 characters, no '.'). At most 256 entries. */
int farcall_register(const char *name, void *fn);
#define FARCALL_EXPORT(fn) farcall_register(#fn, (void *)(fn))

/* Ends initialization; never returns. */
void farcall_serve(void) __attribute__((noreturn));

/* Inside an entry point: is [p, p+len) wholly in the calling request's memory? Every pointer
 * a caller passes must be checked with this before use: a pointer into the backend's own
 * memory (or a wild one) is refused. Generated server skeletons do it for you. */
int farcall_caller_ok(const void *p, size_t len);

/* Which instance of the backend this call runs in (0..N-1). */
int farcall_instance(void);

/* ---- Callers ----------------------------------------------------------------------------
 *
 * A request program reaches a backend entry through an address obtained by name, e.g.
 * "counter.add" (backend name as the host attached it, then the entry), or just "add" when
 * only one attached backend has it. Look entries up during initialization (before
 * farcall_ready()) so that forks inherit the result. The address is a gate: calling it traps
 * into the VMM, which switches to the backend for the duration of the call.
 * Returns NULL if there is no such entry.
 */
void *farcall_lookup(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* FARCALL_H */
