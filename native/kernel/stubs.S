/* farcall's guest kernel, portable flavor ("out-stub").
 *
 * Every event from user mode lands on a single `out` instruction in ring 0 whose port
 * names the event; the VMM does the rest (reads the frame, switches back to user mode
 * through the vCPU registers). No instruction after the `out` ever runs: the VMM sets
 * RIP. On PVM hosts the trap-page flavor is used instead and no guest kernel code runs
 * at all, because ring-0 instructions are emulated there (~0.75 us each).
 *
 * Layout (offsets from the stub page, mirrored in native/vmm/layout.h):
 *   0x000         syscall entry (MSR_LSTAR)          out %al, $0xe0
 *   0x100 + 8*v   exception vector v (v < 32)        out %al, $(0x80 + v)
 *   0x200         any other vector                   out %al, $0xdf
 * A far call's return address is not here: a backend returns to it from user mode, which cannot
 * fetch this supervisor-only page. It is the (unmapped) trap-page address, and the #PF that the
 * fetch raises is the return trap (native/vmm/vm.cpp, exception_event).
 */
        .section .rodata
        .globl farcall_kernel_stubs
        .globl farcall_kernel_stubs_end
        .balign 4096
farcall_kernel_stubs:
        out %al, $0xe0
        hlt
        .org farcall_kernel_stubs + 0x100
        .set vec, 0
        .rept 32
        .balign 8
        out %al, $(0x80 + vec)
        hlt
        .set vec, vec + 1
        .endr
        .org farcall_kernel_stubs + 0x200
        out %al, $0xdf
        hlt
farcall_kernel_stubs_end:
        .section .note.GNU-stack,"",@progbits
