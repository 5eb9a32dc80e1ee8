/* probe7 guest: native supervisor (after MSR 0x4b564d10) enters user mode
 * with sysretq (mode 0) or iretq (mode 1); user code does N `syscall`s, each
 * handled at LSTAR and returned the same way; per-iteration rdtsc deltas
 * are stored in a user buffer.  Entry: rdi=iters rsi=struct GPA rdx=mode
 * rbx=user stack top r12=delta buffer VA. */
	.section .rodata.guest, "a"
	.code64
	.globl p7_start, p7_end
p7_start:
	mov %rdx, mode(%rip)
	mov %rdi, iters(%rip)
	mov %cs, %rax
	mov %rax, cs_boot(%rip)
	test %rsi, %rsi
	jz 1f
	mov $0x4b564d10, %ecx
	mov %rsi, %rax
	mov %rsi, %rdx
	shr $32, %rdx
	wrmsr
1:	mov %cs, %rax
	mov %rax, cs_enabled(%rip)
	lea sys_entry(%rip), %rax
	mov %rax, %rdx
	shr $32, %rdx
	mov $0xc0000082, %ecx
	wrmsr
	mov $0xc0000081, %ecx
	xor %eax, %eax
	mov $0x00230010, %edx
	wrmsr
	mov $0xc0000084, %ecx
	mov $0x47700, %eax
	xor %edx, %edx
	wrmsr
	mov %rsp, kstack(%rip)
	/* to user */
	lea user_entry(%rip), %rcx
	mov $0x202, %r11
	mov %rbx, %rsp
	cmpq $2, mode(%rip)
	jne 7f
	mov ucr3(%rip), %rax
	mov %rax, %cr3
	sysretq
7:	cmpq $0, mode(%rip)
	jne 2f
	sysretq
2:	push $0x2b
	push %rbx
	push %r11
	push $0x33
	push %rcx
	iretq

user_entry:
	mov %cs, %rax
	mov %rax, cs_user(%rip)
	test %rbp, %rbp          /* rbp=1: user tries a privileged op first */
	jz 6f
	mov %cr3, %rax
	mov $0x77, %al
	mov $0x21, %dx
	out %al, %dx             /* reached only if mov from cr3 did not fault */
6:
	mov iters(%rip), %rbx
	mov %r12, %r13
	test %rbx, %rbx
	jz 4f
3:	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r14
	mov $1, %eax
	syscall
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r15
	sub %r14, %rdx
	mov %rdx, (%r13)
	mov t_entry(%rip), %rax
	sub %r14, %rax
	mov %rax, 0x100000(%r13)      /* entry part: user syscall -> handler */
	add $8, %r13
	dec %rbx
	jnz 3b
4:	mov $-1, %rax
	syscall
	ud2

sys_entry:
	mov %rax, %r9
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, t_entry(%rip)
	mov %r9, %rax
	mov %cs, %r8
	mov %r8, cs_handler(%rip)
	cmp $-1, %rax
	je finish
	incq count(%rip)
	cmpq $2, mode(%rip)
	jne 8f
	mov kcr3(%rip), %rax
	mov %rax, %cr3
	mov ucr3(%rip), %rax
	mov %rax, %cr3
	sysretq
8:	cmpq $0, mode(%rip)
	jne 5f
	sysretq
5:	mov %rsp, %r9
	push $0x2b
	push %r9
	push %r11
	push $0x33
	push %rcx
	iretq
finish:
	mov count(%rip), %rax
	mov cs_boot(%rip), %r8
	mov cs_enabled(%rip), %r9
	mov cs_user(%rip), %r10
	mov cs_handler(%rip), %r11
	mov $0x20, %dx
	out %al, %dx
	hlt
	.balign 8
t_entry:	.quad 0
	.globl p7_kcr3, p7_ucr3
p7_kcr3:
kcr3:	.quad 0
p7_ucr3:
ucr3:	.quad 0
mode:	.quad 0
iters:	.quad 0
count:	.quad 0
kstack:	.quad 0
cs_boot:	.quad 0
cs_enabled:	.quad 0
cs_user:	.quad 0
cs_handler:	.quad 0
p7_end:
	.section .note.GNU-stack,"",@progbits
