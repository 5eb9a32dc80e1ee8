/* probe6 guest: enable via MSR 0x4b564d10 (value in %rsi, skipped if 0),
 * then time a loop; %cs is sampled before/after to see hardware CPL. */
	.section .rodata.guest, "a"
	.code64
	.globl p6_start, p6_end
p6_start:
	mov %cs, %r8
	test %rsi, %rsi
	jz 1f
	mov $0x4b564d10, %ecx
	mov %rsi, %rax
	mov %rsi, %rdx
	shr $32, %rdx
	wrmsr
1:	mov %cs, %r9
	pushfq
	pop %r13
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r10
	mov %rdi, %rcx
2:	dec %rcx
	jnz 2b
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r11
	mov %cs, %r12
	mov $0x4b564d10, %ecx
	rdmsr
	mov %rax, %r14
	mov $0x20, %dx
	out %al, %dx
	hlt
p6_end:
	.section .note.GNU-stack,"",@progbits
