/* probe8 guest: kvm_pvm "direct switching" (user <-> supervisor without a VM exit).
 * Runs from emulated ring 0 at CODE_VA with CR3 = kernel root (bit 12 clear).
 * Entry: rdi=iters rsi=value for MSR 0x4b564d10 rdx=ret mode (0: int $0x19, 1: int $0x17)
 *        rbx=user stack top r12=delta buffer (user VA) r13=user_entry (user VA)
 *        rbp=far mode (0: none, 1: HC_SET_CR3 to the other pair and back per trip)
 *        r14=kernel cr3 of pair B, r15=kernel cr3 of pair A (for far mode)
 * The supervisor never touches CR3 or GS itself: with the kpti flag the
 * hypervisor switches CR3 between root and root|0x1000 on entry/exit. */
	.section .rodata.guest, "a"
	.code64
	.globl p8_start, p8_end, p8_user_entry
p8_start:
	mov %rdx, mode(%rip)
	mov %rdi, iters(%rip)
	mov %rbp, far(%rip)
	mov %r8, priv(%rip)
	lea p8_start(%rip), %rax
	mov %rax, kva(%rip)
	mov %r14, cr3b(%rip)
	mov %r15, cr3a(%rip)
	mov %cs, %rax
	mov %rax, cs_boot(%rip)
	/* syscall MSRs (emulated ring 0: cheap) */
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
	/* enable PV mode; from the next instruction on we run natively */
	mov $0x4b564d10, %ecx
	mov %rsi, %rax
	mov %rsi, %rdx
	shr $32, %rdx
	wrmsr
	mov %cs, %rax
	mov %rax, cs_enabled(%rip)
	/* first trip to user mode */
	mov %r13, %rcx
	mov $0x202, %r11
	mov %rbx, %rsp
	jmp ret_user

	.globl p8_user_entry
p8_user_entry:
	mov %cs, %rax
	mov %rax, cs_user(%rip)
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
	sub %r14, %rdx
	mov %rdx, (%r13)
	mov t_entry(%rip), %rax
	sub %r14, %rax
	mov %rax, 0x100000(%r13)      /* entry part: user syscall -> handler */
	add $8, %r13
	dec %rbx
	jnz 3b
4:	cmpq $0, priv(%rip)
	je 6f
	cmpq $2, priv(%rip)
	jne 7f
	mov kva(%rip), %rax
	mov (%rax), %rax              /* priv=2: read a supervisor-only VA: must #PF */
	jmp 8f
7:	mov %cr3, %rax                /* priv=1: must fault (#GP to the guest IDT) */
8:
	mov $0x77, %al
	mov $0x21, %dx
	out %al, %dx                  /* reached only if the mov from cr3 did not fault */
6:	mov $-1, %rax
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
	cmpq $0, far(%rip)
	je ret_user
	mov %rcx, %r10
	mov %rbx, saved_rbx(%rip)
	cmpq $4, far(%rip)
	jne 9f
	xor %eax, %eax                /* far=4: synthetic CPUID (int $0x1a), leaf 0 */
	xor %ecx, %ecx
	int $0x1a
	mov %r10, %rcx
	mov saved_rbx(%rip), %rbx
	mov $0x202, %r11
	jmp ret_user
9:	cmpq $5, far(%rip)
	jne 9f
	mov $0x1007, %eax             /* far=5: HC_FLUSH_TLB (int $0x1b) */
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b
	mov %r10, %rcx
	mov saved_rbx(%rip), %rbx
	mov $0x202, %r11
	jmp ret_user
9:	cmpq $6, far(%rip)
	jne 9f
	mov $0x99, %dx                /* far=6: out to the VMM (the host re-runs at once) */
	out %al, %dx
	mov %r10, %rcx
	mov saved_rbx(%rip), %rbx
	mov $0x202, %r11
	jmp ret_user
9:	cmpq $7, far(%rip)
	jne 9f
	mov cr3b(%rip), %rbx          /* far=7: one HC_SET_CR3 per trip, alternating pair A / pair B */
	xchg %rbx, cr3a(%rip)
	mov %rbx, cr3b(%rip)
	mov $0x1001, %eax
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b
	mov %r10, %rcx
	mov saved_rbx(%rip), %rbx
	mov $0x202, %r11
	jmp ret_user
9:	/* far mode 1-3: switch to pair B and back via HC_SET_CR3 (int $0x1b, rax=0x1001, rbx=cr3) */
	mov cr3b(%rip), %rbx
	mov $0x1001, %eax
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b
	mov cr3a(%rip), %rbx
	mov $0x1001, %eax
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b
	mov %r10, %rcx
	mov saved_rbx(%rip), %rbx
	mov $0x202, %r11
ret_user:
	/* rcx = user rip, r11 = user rflags, rsp = user rsp */
	cmpq $0, mode(%rip)
	jne 5f
	int $0x19                     /* dsiret: rip<-rcx rflags<-r11, rsp unchanged */
	ud2
5:	mov %rsp, %r9
	push $0x2b
	push %r9
	push %r11
	push $0x33
	push %rcx
	int $0x17                     /* eretu: iret frame at rsp */
	ud2
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
saved_rbx:	.quad 0
mode:	.quad 0
far:	.quad 0
priv:	.quad 0
kva:	.quad 0
cr3a:	.quad 0
cr3b:	.quad 0
iters:	.quad 0
count:	.quad 0
cs_boot:	.quad 0
cs_enabled:	.quad 0
cs_user:	.quad 0
cs_handler:	.quad 0
p8_end:
	.section .note.GNU-stack,"",@progbits
