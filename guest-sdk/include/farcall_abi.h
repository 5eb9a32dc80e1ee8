/* The farcall guest ABI, defined once: the numbers a guest program and the VMM agree on.
 *
 * Plain #defines, so that C and C++ guest code (farcall.h), the VMM (native/vmm: process.h,
 * backend.h, gate.cpp, layout.h) and the guest kernels' assembly (native/kernel) all take their
 * values from here; the VMM checks its structures against the layouts below at build time
 * (static_assert). Changing a value here changes it everywhere, and for every guest built
 * against it: guests must be rebuilt with the SDK of the VMM that runs them. */
#ifndef FARCALL_ABI_H
#define FARCALL_ABI_H

/* System-call numbers of farcall's own calls (Linux has no system calls in this range). */
#define FARCALL_SYS_FIRST 0x4600
#define FARCALL_SYS_LAST 0x46ff
#define FARCALL_SYS_READY 0x4600   /* (arena, arena size, &current): the master freezes here */
#define FARCALL_SYS_RESPOND 0x4601 /* (buf, len) */
#define FARCALL_SYS_FAIL 0x4602    /* (message, len) */
#define FARCALL_SYS_LOOKUP 0x4603  /* (name, len) -> a gate address, or -errno */
#define FARCALL_SYS_SERVE 0x4604   /* (entry table, count, call stack, its size, &call info, trampoline) */

/* Values a far call returns instead of the entry's result when the backend could not finish
 * it (the backend's `durability` says what the failed call's writes become). */
#define FARCALL_E_BACKEND_FAULT (-1001)   /* the entry crashed (CPU exception) */
#define FARCALL_E_BACKEND_TIMEOUT (-1002) /* the entry ran past the backend's call timeout */
#define FARCALL_E_BACKEND_BUSY (-1003)    /* no instance became free in time, or the backend is restarting */
#define FARCALL_E_BACKEND_EXIT (-1004)    /* the entry called exit() or abort(), or exhausted its memory */

/* auxv entry: where farcall's own calls may be made by a plain `call` (0: `syscall` only). */
#define FARCALL_AT_TRAP 0x4643

/* Gate addresses: backend b's entry e is FARCALL_GATE_VA + b * FARCALL_GATE_STRIDE + e * 16. */
#define FARCALL_GATE_VA 0x8000000000
#define FARCALL_GATE_STRIDE 0x10000
/* The in-guest gate's system-call number for backend b's entry e: FARCALL_GATE_SYS + (b << 12) + e. */
#define FARCALL_GATE_SYS 0x47000000

/* struct farcall_call_info, written by the VMM at the start of every call into a backend. */
#define FARCALL_CALL_INFO_CALLER_LO 0
#define FARCALL_CALL_INFO_CALLER_HI 8
#define FARCALL_CALL_INFO_INSTANCE 16
#define FARCALL_CALL_INFO_CALLS 24
#define FARCALL_CALL_INFO_SIZE 32

#endif
