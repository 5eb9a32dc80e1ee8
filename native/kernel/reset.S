/* The reset page: where every request of a fork starts (Vm::restore_state).
 *
 * The VMM puts a fork back into its master's state after each request. Registers go back
 * through the kvm_run sync area at no cost; the vector state (x87, SSE, AVX, AVX-512) and, in
 * the pvm-native flavor, the user GS base need an ioctl each from the host. Instead the fork
 * resumes here, in user mode, on a page the VMM filled and the guest can read and execute but
 * never write: XRSTOR of the master's XSAVE image, the master's user GS base, then the
 * master's RAX, RDX, RCX, and a jump to the master's RIP. Nothing here touches RFLAGS or RSP,
 * and the guest cannot skip it: the VMM sets the fork's RIP (pvm-native: the RIP the guest
 * kernel returns to) here at every reset.
 *
 * Layout (layout.h kReset*): the XSAVE image at 0 (64-byte aligned, standard format, at most
 * 0xf00 bytes), this code at 0xf00, the values at 0xf80, the thread-resume code at 0xfc0.
 */
        .section .rodata
        .globl farcall_reset_page
        .balign 4096
farcall_reset_page:
.Lpage:
        .skip 0xf00
        mov $-1, %eax
        mov $-1, %edx
        xrstor64 .Lpage(%rip)
        mov .Lpage + 0xf98(%rip), %rax     /* user GS base */
        wrgsbase %rax
        mov .Lpage + 0xf80(%rip), %rax
        mov .Lpage + 0xf88(%rip), %rdx
        mov .Lpage + 0xf90(%rip), %rcx
        jmp *.Lpage + 0xfa0(%rip)
        .org .Lpage + 0xf80
        .quad 0, 0, 0, 0, 0                         /* RAX RDX RCX GS RIP, filled by the VMM */
/* A guest thread preempted at the tick resumes here (threads.cpp): the VMM returns to it as from
 * a system call (which loses RCX, R11 and RFLAGS), with RSP at a record it wrote below the
 * thread's red zone: R11, RCX, RFLAGS, RIP. The record is popped and RSP put back. */
        .org .Lpage + 0xfc0
        pop %r11
        pop %rcx
        popfq
        ret $128
        .org farcall_reset_page + 0x1000
        .section .note.GNU-stack,"",@progbits
