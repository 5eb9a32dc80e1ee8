/* probe5 guest: run a table of operations from ring 0, recording results.
 * table at %rbx: entries of 4 qwords {op, arg, val, out}; op 0=rdmsr 1=wrmsr
 * 2=vmcall(rax=arg, rbx..=val) 3=vmmcall; terminated by op=-1.
 * out = result rax; the next table's 'val'.. no: result stored at +24, fault
 * vector (or 0) stored in the high word via separate array at %rbp. */
	.section .rodata.guest, "a"
	.code64
	.globl p5_start, p5_end, p5_gp, p5_ud
p5_start:
	mov %rbx, %r12          /* table cursor */
	mov %rbp, %r13          /* fault array cursor */
next:
	mov (%r12), %rax
	cmp $-1, %rax
	je done
	xor %r14, %r14
	cmp $0, %rax; je do_rdmsr
	cmp $1, %rax; je do_wrmsr
	cmp $2, %rax; je do_vmcall
	cmp $3, %rax; je do_vmmcall
	cmp $4, %rax; je do_syscall
	cmp $5, %rax; je do_syncpuid
	cmp $6, %rax; je do_cpuid
	jmp store
do_rdmsr:
	mov 8(%r12), %rcx
	mov $2, %r15
	xor %eax, %eax; xor %edx, %edx
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	jmp store
do_wrmsr:
	mov 8(%r12), %rcx
	mov 16(%r12), %rax
	mov %rax, %rdx
	shr $32, %rdx
	mov $2, %r15
	wrmsr
	xor %eax, %eax
	jmp store
do_vmcall:
	mov 8(%r12), %rax
	mov 16(%r12), %rbx
	xor %ecx, %ecx; xor %edx, %edx; xor %esi, %esi
	mov $3, %r15
	vmcall
	jmp store
do_vmmcall:
	mov 8(%r12), %rax
	mov 16(%r12), %rbx
	xor %ecx, %ecx; xor %edx, %edx; xor %esi, %esi
	mov $3, %r15
	vmmcall
	jmp store
do_syscall:	/* PVM-style hypercall from supervisor: rax=nr, rdi/rsi from val, r10 = rcx */
	mov 8(%r12), %rax
	mov 16(%r12), %rdi
	mov %rdi, %rsi
	xor %r10, %r10
	mov $2, %r15
	syscall
	jmp store
do_syncpuid:	/* result: eax | ebx<<32 ; ecx|edx<<32 stored at +16 (val) */
	mov 8(%r12), %rax
	mov 16(%r12), %rcx
	mov $10, %r15
	.byte 0x0f,0x01,0x3c,0x25,0x50,0x56,0x4d,0xff,0x0f,0xa2
	jmp cpuid_store
do_cpuid:
	mov 8(%r12), %rax
	mov 16(%r12), %rcx
	mov $2, %r15
	cpuid
cpuid_store:
	shl $32, %rdx
	or %rdx, %rcx
	mov %rcx, 16(%r12)
	shl $32, %rbx
	mov %eax, %eax
	or %rbx, %rax
	jmp store
store:
	mov %rax, 24(%r12)
	mov %r14, (%r13)
	add $32, %r12
	add $8, %r13
	jmp next
done:
	mov $0x20, %dx
	out %al, %dx
	hlt
	.balign 16
p5_gp:	/* #GP: error code on stack */
	mov $13, %r14
	add $8, %rsp
	add %r15, (%rsp)
	iretq
	.balign 16
p5_ud:
	mov $6, %r14
	add %r15, (%rsp)
	iretq
p5_end:
	.section .note.GNU-stack,"",@progbits
