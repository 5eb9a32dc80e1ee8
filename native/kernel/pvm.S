/* farcall's guest kernel, PVM-native flavor (EntryMode::PvmNative, FARCALL_ENTRY=pvm-native).
 *
 * On kvm_pvm hosts a guest kernel that writes MSR 0x4b564d10 from (emulated) ring 0 runs its
 * supervisor code natively afterwards, and with "direct switching" (flags 0x7f, see docs/pvm.md)
 * user `syscall` reaches MSR_LSTAR and `int $0x19` returns to user mode, both without a VM exit.
 * This kernel uses that to answer the system calls that need no host inside the guest:
 *   getpid/gettid (1), getppid (0), getuid/getgid/geteuid/getegid (0), sched_yield (0),
 *   clock_gettime/gettimeofday/time from rdtsc scaled by the VMM's calibration.
 * Everything else is forwarded to the VMM with one `out` (port 0xe0, registers untouched: the
 * VMM sees the user's registers, as with the trap page), and the VMM resumes the guest at
 * `resume`, which returns to user mode with `int $0x19` (RCX = user RIP, R11 = RFLAGS, RSP).
 * Exceptions from user mode arrive through the IDT on TSS.RSP0 with the kernel root loaded;
 * each vector is one `out` (port 0xb0 + vector; 0xdf for vectors >= 32). Not stubs.S's 0x80 + v:
 * kvm_pvm keeps port 0x80 for itself (its guests' "vIF pending" doorbell), so that `out` never
 * reaches the VMM.
 *
 * The code runs at kKernelVa + kPvmCodeOff and is position dependent only through RIP-relative
 * references to two fixed pages (offsets mirrored from native/vmm/layout.h):
 *   DATA  = kKernelVa + 0x9000   calibration, written by the VMM at VM creation, read-only here
 *   VARS  = kKernelVa + 0x201000 scratch in the not-dirty-logged PVM memslot (reset-safe: every
 *                                 slot is written before it is read on each path)
 * The supervisor never uses a stack on the system-call path (user RSP is live, red zone intact),
 * never touches GS (the hypervisor flips it) and never writes CR3 (the hypervisor switches
 * between the kernel root and root|0x1000 itself).
 */
#include "../../guest-sdk/include/farcall_abi.h"

        .set CODE_OFF, 0xa000
        .set DATA_OFF, 0x9000
        .set VARS_OFF, 0x201000

        /* DATA page (layout.h kPvmD*) */
        .set D_ENABLE, 0x00      /* value for MSR 0x4b564d10: vIF page GPA | flags */
        .set D_TSC, 0x08         /* TSC at the base instant */
        .set D_MULT, 0x10        /* ns per TSC tick << 32 */
        .set D_MONO, 0x18        /* CLOCK_MONOTONIC ns at the base instant */
        .set D_RT, 0x20          /* CLOCK_REALTIME ns at the base instant */
        .set D_ULO, 0x28         /* lowest user address the kernel may write */
        .set D_UHI, 0x30         /* highest start of a 16-byte user write */
        .set D_NS, 0x38          /* 1000000000 */
        .set D_THOUSAND, 0x40    /* 1000 */
        .set D_RTMASK, 0x48      /* bit c set: clock id c reads CLOCK_REALTIME */

        /* VARS page (layout.h kPvmV*) */
        .set V_RAX, 0x00
        .set V_RCX, 0x08
        .set V_RDX, 0x10
        .set V_RSP, 0x18
        .set V_COUNT, 0x20       /* system calls answered in the guest */
        .set V_SCRATCH, 0x28
        /* the in-guest gate (layout.h kPvmV*): set by the VMM per VM, then the current call */
        .set V_INCALL, 0x40      /* 1 from taking the instance to leaving it: the VMM cleans up */
        .set V_OWNER, 0x48       /* this VM's value in an instance's lock word */
        .set V_BACKEND, 0x50     /* the current call's backend */
        .set V_BLOCK, 0x58       /* its configuration block */
        .set V_URIP, 0x60
        .set V_URFL, 0x68
        .set V_URSP, 0x70
        .set V_UFS, 0x78
        .set V_KGS, 0x80
        .set V_ENTRY, 0x88
        .set V_T0, 0x90          /* TSC at the start of the call */
        .set V_NOTIFY, 0x98      /* bit b: exit after each call of backend b (call events wanted) */
        .set V_SAVED, 0xa0       /* the caller's RBX RBP R12-R15, for a call that does not return */
        .set V_COMMIT, 0xd0      /* bit b: exit before unlocking after each call of backend b (per-call undo) */
        .set V_LINES, 0x100      /* per backend: address of this VM's instance line (+0 lock, +8 calls) */
        .set V_INSTS, 0x180      /* per backend: that instance's index */

        /* gate configuration page (layout.h kPvmG*), VMM-written: global fields, then one block
         * per backend at GB_OFF + 64 * b; and the entry table (each backend's from its TBASE) */
        .set GATE_OFF, 0x204000
        .set TABLE_OFF, 0x208000
        .set GATE_SYS, FARCALL_GATE_SYS
        .set G_NB, 0x00          /* backends with an in-guest gate (0: none in this VM) */
        .set G_CLO, 0x08         /* the caller's memory, for farcall_caller_ok() */
        .set G_CHI, 0x10
        .set G_STUBLO, 0x18      /* the stub pages at kGateVa: a gate call's RCX lies inside */
        .set G_STUBHI, 0x20
        .set GB_OFF, 0x100
        .set B_N, 0x00           /* entries */
        .set B_TRAMP, 0x08       /* the backend SDK's trampoline (entry in R11), or 0 */
        .set B_FS, 0x10
        .set B_GS, 0x18
        .set B_STACK, 0x20
        .set B_INFO, 0x28        /* the backend's struct farcall_call_info, or 0 */
        .set B_TBASE, 0x30       /* its first entry in the table */
        .set UNAVAIL_OFF, 0x301000  /* + 0x2000 * b: nonzero while backend b is unavailable */

#define D(x) (base - CODE_OFF + DATA_OFF + (x))(%rip)
#define V(x) (base - CODE_OFF + VARS_OFF + (x))(%rip)
#define G(x) (base - CODE_OFF + GATE_OFF + (x))(%rip)

        .section .rodata
        .globl farcall_pvm_kernel, farcall_pvm_kernel_end
        .globl farcall_pvm_boot, farcall_pvm_syscall, farcall_pvm_resume, farcall_pvm_vectors
        .balign 4096
farcall_pvm_kernel:
base:

/* First instructions of a fresh vCPU (emulated ring 0, kernel root, RSP = boot stack).
 * The VMM parked the registers this vCPU must return to user with in VARS: RAX, RCX (user RIP),
 * RDX, RSP (user RSP); every other register already holds its user value, R11 the user RFLAGS. */
farcall_pvm_boot:
        mov D(D_ENABLE), %rax
        mov %rax, %rdx
        shr $32, %rdx
        mov $0x4b564d10, %ecx
        wrmsr                          /* from the next instruction on: native supervisor */
        mov V(V_RAX), %rax
        mov V(V_RCX), %rcx
        mov V(V_RDX), %rdx
        mov V(V_RSP), %rsp
        int $0x19                      /* first return to user: emulated once, then armed */
        ud2

/* MSR_LSTAR. User registers are live; RCX = user RIP, R11 = user RFLAGS, RSP = user RSP. */
        .balign 64
farcall_pvm_syscall:
        cmpq $0, V(V_INCALL)
        jne gate_syscall               /* the backend, in supervisor mode, inside a call */
        cmp G(G_STUBLO), %rcx
        jb 1f
        cmp G(G_STUBHI), %rcx
        jb gate_stub                   /* from the stub page: a far call, or a refused one */
/* gettid and sched_yield go to the VMM: it keeps the guest's threads (docs/threads.md). */
1:      cmp $228, %rax                 /* clock_gettime */
        je clock_gettime
        cmp $110, %rax                 /* getppid */
        je ret_zero
        cmp $39, %rax                  /* getpid */
        je ret_one
        cmp $96, %rax                  /* gettimeofday */
        je gettimeofday
        cmp $201, %rax                 /* time */
        je time
        cmp $102, %rax                 /* getuid */
        je ret_zero
        cmp $104, %rax                 /* getgid */
        je ret_zero
        cmp $107, %rax                 /* geteuid */
        je ret_zero
        cmp $108, %rax                 /* getegid */
        je ret_zero
forward:
        out %al, $0xe0                 /* to the VMM; it sets RAX (and may set RCX/R11/RSP) */
farcall_pvm_resume:
        int $0x19                      /* back to user: RIP = RCX, RFLAGS = R11, RSP unchanged */
        ud2

ret_one:
        mov $1, %eax
        incq V(V_COUNT)
        int $0x19
        ud2
ret_zero:
        xor %eax, %eax
        incq V(V_COUNT)
        int $0x19
        ud2

/* RAX = nanoseconds of the clock selected by the carry flag (CF=1 realtime). Clobbers RDX. */
.macro NOW_NS
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        sub D(D_TSC), %rax
        mulq D(D_MULT)
        shrd $32, %rdx, %rax
.endm

/* clock_gettime(RDI = clock id, RSI = struct timespec *) */
clock_gettime:
        cmp $7, %rdi                   /* REALTIME..BOOTTIME; others (and negatives) go to the VMM */
        ja forward
        cmp D(D_ULO), %rsi
        jb forward                     /* a pointer the kernel may not write: the VMM says EFAULT */
        cmp D(D_UHI), %rsi
        ja forward
        mov %rdx, V(V_RDX)
        NOW_NS
        btq %rdi, D(D_RTMASK)
        jc 1f
        add D(D_MONO), %rax
        jmp 2f
1:      add D(D_RT), %rax
2:      xor %edx, %edx
        divq D(D_NS)
        mov %rax, (%rsi)
        mov %rdx, 8(%rsi)
        mov V(V_RDX), %rdx
        xor %eax, %eax
        incq V(V_COUNT)
        int $0x19
        ud2

/* gettimeofday(RDI = struct timeval * or 0, RSI = timezone, ignored as by the VMM) */
gettimeofday:
        test %rdi, %rdi
        jz ret_zero
        cmp D(D_ULO), %rdi
        jb forward
        cmp D(D_UHI), %rdi
        ja forward
        mov %rdx, V(V_RDX)
        NOW_NS
        add D(D_RT), %rax
        xor %edx, %edx
        divq D(D_NS)
        mov %rax, (%rdi)
        mov %rdx, %rax
        xor %edx, %edx
        divq D(D_THOUSAND)
        mov %rax, 8(%rdi)
        mov V(V_RDX), %rdx
        xor %eax, %eax
        incq V(V_COUNT)
        int $0x19
        ud2

/* time(RDI = time_t * or 0) -> seconds */
time:
        test %rdi, %rdi
        jz 1f
        cmp D(D_ULO), %rdi
        jb forward
        cmp D(D_UHI), %rdi
        ja forward
1:      mov %rdx, V(V_RDX)
        NOW_NS
        add D(D_RT), %rax
        xor %edx, %edx
        divq D(D_NS)
        test %rdi, %rdi
        jz 2f
        mov %rax, (%rdi)
2:      mov V(V_RDX), %rdx
        incq V(V_COUNT)
        int $0x19
        ud2

/* The in-guest far call (trusted backends only: the backend runs in guest supervisor mode on
 * the kernel root, which maps this VM's instance at the backend's address; the user root maps
 * none of it). A call is `syscall` from the stub page with RAX = GATE_SYS + entry and the
 * caller's argument registers (RCX moved to R10 by the stub). Steps: take the instance's lock
 * word (cross-VM, in a shared page; contention goes to the VMM), save the caller's RIP, RFLAGS,
 * RSP, FS, callee-saved registers, switch FS/GS/stack, enter the SDK trampoline with the entry in
 * R11 and the return to gate_return on the backend stack; on return count the call, switch back,
 * unlock, clear scratch registers, `int $0x19` to the caller. No exit on this path. */
gate_stub:
        mov %rcx, V(V_URIP)
        mov %r11, V(V_URFL)
        /* Only entry e of backend b's own `syscall` (at kGateVa + b * 0x10000 + e * 16 + 10)
         * with RAX = GATE_SYS + (b << 12) + e enters. */
        mov %rcx, %r11
        sub G(G_STUBLO), %r11
        mov %r11d, %ecx
        and $0xffff, %ecx
        sub $10, %ecx
        test $15, %ecx
        jnz gate_bad                   /* (offsets 0..9 of a stub give 6..15 here) */
        shr $4, %ecx
        shr $16, %r11
        shl $12, %r11
        add %rcx, %r11
        add $GATE_SYS, %r11
        cmp %r11, %rax
        jne gate_bad
        sub $GATE_SYS, %eax
        mov %eax, %ecx
        shr $12, %ecx                  /* b */
        and $0xfff, %eax               /* e */
        cmp G(G_NB), %rcx
        jae gate_bad
        mov %rcx, V(V_BACKEND)
        mov %rax, V(V_ENTRY)
        shl $6, %rcx
        lea (base - CODE_OFF + GATE_OFF + GB_OFF)(%rip), %r11
        add %rcx, %r11                 /* backend b's configuration block */
        mov %r11, V(V_BLOCK)
        cmp B_N(%r11), %rax
        jae gate_bad
        mov V(V_BACKEND), %rcx
        shl $13, %rcx                  /* backend b's lines: kPvmLockVa + b * 0x2000 */
        lea (base - CODE_OFF + UNAVAIL_OFF)(%rip), %r11
        cmpq $0, (%r11, %rcx)
        jne gate_busy
        mov V(V_BACKEND), %rcx
        lea (base - CODE_OFF + VARS_OFF + V_LINES)(%rip), %r11
        mov (%r11, %rcx, 8), %r11      /* this VM's instance line of backend b */
        mov V(V_OWNER), %rcx
        xor %eax, %eax
        lock cmpxchg %rcx, (%r11)
        jne gate_contended
gate_locked:                           /* R11 = the instance line */
        mov %rsp, V(V_URSP)
        mov %rbx, V(V_SAVED)
        mov %rbp, V(V_SAVED + 8)
        mov %r12, V(V_SAVED + 16)
        mov %r13, V(V_SAVED + 24)
        mov %r14, V(V_SAVED + 32)
        mov %r15, V(V_SAVED + 40)
        mov V(V_BLOCK), %rbx           /* RBX, RBP: callee-saved, free now, put back on return */
        mov %rdx, V(V_RDX)
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        mov %rax, V(V_T0)
        mov V(V_RDX), %rdx
        mov B_INFO(%rbx), %rcx
        test %rcx, %rcx
        jz 1f
        mov G(G_CLO), %rax
        mov %rax, (%rcx)
        mov G(G_CHI), %rax
        mov %rax, 8(%rcx)
        mov V(V_BACKEND), %rax
        lea (base - CODE_OFF + VARS_OFF + V_INSTS)(%rip), %rbp
        mov (%rbp, %rax, 8), %rax
        mov %rax, 16(%rcx)
        mov 8(%r11), %rax
        mov %rax, 24(%rcx)
1:      rdfsbase %rax
        mov %rax, V(V_UFS)
        rdgsbase %rax
        mov %rax, V(V_KGS)
        /* The record is complete: from here until gate_return a stop is the VMM's to undo. */
        movq $1, V(V_INCALL)
        mov B_FS(%rbx), %rax
        wrfsbase %rax
        mov B_GS(%rbx), %rax
        wrgsbase %rax
        mov B_STACK(%rbx), %rsp
        lea gate_return(%rip), %rax
        push %rax
        mov V(V_ENTRY), %rax
        add B_TBASE(%rbx), %rax
        lea (base - CODE_OFF + TABLE_OFF)(%rip), %r11
        mov (%r11, %rax, 8), %r11
        mov %r10, %rcx
        mov B_TRAMP(%rbx), %rax
        test %rax, %rax
        jz 2f
        jmp *%rax
2:      jmp *%r11

gate_return:
        movq $0, V(V_INCALL)           /* the call is done: a stop from here keeps its result */
        mov V(V_BACKEND), %rsi
        lea (base - CODE_OFF + VARS_OFF + V_LINES)(%rip), %rcx
        mov (%rcx, %rsi, 8), %rcx
        incq 8(%rcx)
        mov V(V_UFS), %rdi
        wrfsbase %rdi
        mov V(V_KGS), %rdi
        wrgsbase %rdi
        mov V(V_SAVED), %rbx
        mov V(V_SAVED + 8), %rbp
        bt %rsi, V(V_COMMIT)           /* bit b: the VMM commits the call's writes, lock held */
        jnc 1f
        out %al, $0xe6
1:      xor %edi, %edi
        xchg %rdi, (%rcx)              /* unlock, a full barrier before the wake flag is read */
        cmpq $0, 16(%rcx)              /* VMM threads sleep waiting for it: wake them */
        jne gate_notify
        bt %rsi, V(V_NOTIFY)           /* bit b: someone listens to backend b's call events */
        jc gate_notify
gate_out:
        xor %esi, %esi
        xor %edi, %edi
        xor %r8d, %r8d
        xor %r9d, %r9d
        xor %r10d, %r10d
        xor %edx, %edx
        mov V(V_URIP), %rcx
        mov V(V_URFL), %r11
        mov V(V_URSP), %rsp
        int $0x19
        ud2
gate_notify:
        out %al, $0xe4                 /* the VMM wakes waiters, emits the call event, resumes here */
        jmp gate_out

gate_contended:
        out %al, $0xe2                 /* the VMM waits for the instance and takes it for this VM */
        test %rax, %rax                /* 0: taken; otherwise the error the call returns */
        jz gate_locked
        jmp gate_fail
gate_busy:
        mov $FARCALL_E_BACKEND_BUSY, %rax  /* restarting */
gate_fail:
        mov V(V_URIP), %rcx
        mov V(V_URFL), %r11
        int $0x19
        ud2

/* A jump into the stub page elsewhere than an entry: the VMM stops the program with a fault. */
gate_bad:
        out %al, $0xe5
        ud2

/* A system call by the backend inside a call: the VMM answers it on the instance's personality
 * and resumes the backend at RCX with RFLAGS = R11. */
gate_syscall:
        out %al, $0xe3
        ud2

/* IDT targets: vector v (< 32) at farcall_pvm_vectors + 8*v, everything else at + 0x100. */
        .balign 256
farcall_pvm_vectors:
        .set vec, 0
        .rept 32
        .balign 8
        out %al, $(0xb0 + vec)
        hlt
        .set vec, vec + 1
        .endr
        .balign 8
        out %al, $0xdf
        hlt
farcall_pvm_kernel_end:
        .section .note.GNU-stack,"",@progbits
