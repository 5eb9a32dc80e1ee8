/* farcall guest SDK runtime: a few system calls, no state the VMM does not know about. */
#include "farcall.h"

#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>

/* Where the VMM takes farcall's own calls by a plain `call` (auxv entry 0x4643), or 0 where
 * only `syscall` reaches it. Read once, in the master, so forks inherit it. */
static long farcall_trap = -1;

/* The request arena: the VMM writes each request here before the fork runs. */
static unsigned char farcall_arena[FARCALL_ARENA_SIZE] __attribute__((aligned(4096)));

/* Filled by the VMM when it resumes a fork: where the request is and how long. */
static struct {
  void *buf;
  size_t len;
} farcall_current;

/* farcall's calls into the VMM: RAX = number, arguments as for a system call. Under PVM a
 * `call` into the trap page exits more cheaply than `syscall`; the red zone is stepped over
 * because the call pushes a return address. */
static long farcall_call(long nr, long a, long b, long c, long d, long e, long f) {
  if (farcall_trap < 0) farcall_trap = (long)getauxval(FARCALL_AT_TRAP);
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  if (farcall_trap) {
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[t]\n\tadd $128, %%rsp"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9), [t] "r"(farcall_trap)
                     : "rcx", "r11", "memory");
  } else {
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
  }
  return ret;
}

static inline long farcall_syscall3(long nr, long a, long b, long c) { return farcall_call(nr, a, b, c, 0, 0, 0); }

static inline long linux_syscall3(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

/* A zeroed XSAVE area: XRSTOR from it puts every vector and x87 register back into its
 * initial state, so a fork never sees register contents left by a previous request. */
const struct {
  unsigned char legacy_head[24];
  unsigned int mxcsr; /* the only non-zero field: the default SSE control word */
  unsigned char rest[4096 - 28];
} farcall__xinit __attribute__((aligned(64), visibility("hidden"))) = {{0}, 0x1f80, {0}};

int farcall_ready(void) {
  /* Arguments: arena, arena size, where the VMM reports the request (buf, len). */
  long r = farcall_syscall3(FARCALL_SYS_READY, (long)farcall_arena, (long)sizeof farcall_arena,
                            (long)&farcall_current);
  /* First instruction of every request (the master's registers are restored to here). */
  __asm__ volatile("xrstor %0" : : "m"(farcall__xinit), "a"(0xffffffffu), "d"(0xffffffffu) : "memory");
  return (int)r;
}

void farcall_request(void **buf, size_t *len) {
  *buf = farcall_current.buf;
  *len = farcall_current.len;
}

void farcall_respond(const void *buf, size_t len) {
  farcall_syscall3(FARCALL_SYS_RESPOND, (long)buf, (long)len, 0);
  for (;;) linux_syscall3(60 /* exit */, 0, 0, 0);  /* outside a fork: end the program */
}

void farcall_fail(const char *message) {
  farcall_syscall3(FARCALL_SYS_FAIL, (long)message, (long)strlen(message), 0);
  for (;;) linux_syscall3(60, 1, 0, 0);
}

/* ---- Backends ---- */

#define FARCALL_MAX_ENTRIES 256
#ifndef FARCALL_CALL_STACK_SIZE
#define FARCALL_CALL_STACK_SIZE (256u << 10)
#endif

static struct {
  const char *name;
  void *fn;
} farcall_entries[FARCALL_MAX_ENTRIES];
static int farcall_entry_count;

/* Gated calls run on this stack, not on the stack of main(). */
static unsigned char farcall_call_stack[FARCALL_CALL_STACK_SIZE] __attribute__((aligned(64)));

/* Written by the VMM at the start of every call. */
struct farcall_call_info {
  uint64_t caller_lo, caller_hi;
  uint64_t instance;
  uint64_t calls;
};
_Static_assert(offsetof(struct farcall_call_info, caller_hi) == FARCALL_CALL_INFO_CALLER_HI &&
                   offsetof(struct farcall_call_info, instance) == FARCALL_CALL_INFO_INSTANCE &&
                   offsetof(struct farcall_call_info, calls) == FARCALL_CALL_INFO_CALLS &&
                   sizeof(struct farcall_call_info) == FARCALL_CALL_INFO_SIZE,
               "struct farcall_call_info does not match farcall_abi.h");
static volatile struct farcall_call_info farcall_call_info;

/* Every gated call enters here (the VMM sets RIP here and R11 = the entry): the caller's
 * vector, x87 and SSE state is put back to its initial state, DF cleared (the VMM also enters
 * with clean RFLAGS), the entry called with the caller's argument registers, and on return the
 * vector state is cleared again so nothing of the backend reaches the caller through it.
 * RAX/RDX (the result) are kept across the second XRSTOR in R8/R9, scratch registers. */
void farcall_gate_trampoline(void);
__asm__(".text\n"
        ".globl farcall_gate_trampoline\n"
        ".hidden farcall_gate_trampoline\n"
        ".type farcall_gate_trampoline, @function\n"
        "farcall_gate_trampoline:\n"
        "  mov %rdx, %r10\n"
        "  mov $-1, %eax\n"
        "  mov $-1, %edx\n"
        "  xrstor farcall__xinit(%rip)\n"
        "  mov %r10, %rdx\n"
        "  cld\n"
        "  sub $8, %rsp\n"
        "  call *%r11\n"
        "  add $8, %rsp\n"
        "  mov %rax, %r8\n"
        "  mov %rdx, %r9\n"
        "  mov $-1, %eax\n"
        "  mov $-1, %edx\n"
        "  xrstor farcall__xinit(%rip)\n"
        "  mov %r8, %rax\n"
        "  mov %r9, %rdx\n"
        "  ret\n"
        ".size farcall_gate_trampoline, .-farcall_gate_trampoline\n");

int farcall_register(const char *name, void *fn) {
  if (farcall_entry_count >= FARCALL_MAX_ENTRIES || !name || !fn) return -1;
  farcall_entries[farcall_entry_count].name = name;
  farcall_entries[farcall_entry_count].fn = fn;
  farcall_entry_count++;
  return 0;
}

void farcall_serve(void) {
  for (;;) {
    farcall_call(FARCALL_SYS_SERVE, (long)farcall_entries, farcall_entry_count, (long)farcall_call_stack,
                 (long)sizeof farcall_call_stack, (long)&farcall_call_info, (long)farcall_gate_trampoline);
    linux_syscall3(60, 70, 0, 0); /* not run by farcall: outside it, exit */
  }
}

int farcall_caller_ok(const void *p, size_t len) {
  uint64_t a = (uint64_t)(uintptr_t)p, lo = farcall_call_info.caller_lo, hi = farcall_call_info.caller_hi;
  return a >= lo && a <= hi && len <= hi - a;
}

int farcall_instance(void) { return (int)farcall_call_info.instance; }

/* ---- Callers ---- */

void *farcall_lookup(const char *name) {
  long r = farcall_syscall3(FARCALL_SYS_LOOKUP, (long)name, (long)strlen(name), 0);
  return r < 0 ? NULL : (void *)r;
}
