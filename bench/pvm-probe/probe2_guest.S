/* probe2 guest: one test per run, selected by %rdi (set by the host). */
	.section .rodata.guest, "a"
	.code64
	.globl p2_start, p2_end
p2_start:
	cmp $0, %rdi; je t_syncpuid
	cmp $1, %rdi; je t_plaincpuid
	cmp $2, %rdi; je t_rdmsr
	cmp $3, %rdi; je t_wrmsr
	cmp $4, %rdi; je t_loop
	hlt
t_syncpuid:	/* eax = leaf (rsi) */
	mov %esi, %eax
	xor %ecx, %ecx
	.byte 0x0f,0x01,0x3c,0x25,0x50,0x56,0x4d,0xff,0x0f,0xa2
	jmp report
t_plaincpuid:
	mov %esi, %eax
	xor %ecx, %ecx
	cpuid
	jmp report
t_rdmsr:
	mov %esi, %ecx
	rdmsr
	jmp report
t_wrmsr:	/* rcx = rsi, value from r8 */
	mov %esi, %ecx
	mov %r8, %rax
	mov %r8, %rdx
	shr $32, %rdx
	wrmsr
	xor %eax, %eax
	jmp report
t_loop:	/* rsi iterations of a tiny loop, to time emulated vs native */
	mov %rsi, %rcx
1:	dec %rcx
	jnz 1b
	jmp report
report:
	mov %rdx, %r9
	mov $0x20, %dx
	out %al, %dx
	hlt
p2_end:
	.section .note.GNU-stack,"",@progbits
