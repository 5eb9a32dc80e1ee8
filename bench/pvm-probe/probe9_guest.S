/* probe9 guest: an in-guest far call on kvm_pvm's root pair, with no VM exit.
 *
 * Three blobs, each copied by the host to its own guest-physical range:
 *   kernel  (p9k_*) at KVA  -> GPA 0x100000   mapped in the kernel root K only
 *   caller  (p9u_*) at UCODE -> GPA 0x600000  mapped in K and in the user root U
 *   backend (p9b_*) at BVA  -> GPA 0xc00000   mapped in K only (PML4 slot 2)
 * U (= K + 0x1000) holds only PML4 slot 0 = caller code, data and stack.
 * Gates:
 *   (a) `syscall` with RAX = GATE_SYS + n  -> LSTAR (natively, root K) -> stub -> backend fn n
 *   (b) `call GATE_PF + 64*n` (unmapped in U and K) -> #PF on fetch -> IDT 14 (natively, root K,
 *       TSS.RSP0) -> stub checks CR2 (vIF page +8) == RIP, error code U|I, alignment, range,
 *       takes the return address from the user stack -> backend fn n
 * The stub saves the caller's RIP/RFLAGS/RSP/FS base, loads the backend's FS base (wrfsbase)
 * and stack, calls the backend with the caller's argument registers, restores FS, and returns
 * to the caller with `int $0x19` (RCX = RIP, R11 = RFLAGS, RSP). */
	.set KVA,        0xffffd90000000000
	.set K_STUBS,    KVA + 0x8000          /* guest_common.S exception stubs (report via out 0x30) */
	.set VIF_KVA,    KVA + 0x200000        /* vIF page (GPA 0x200000); +8 = CR2 cell (flag 0x10) */
	.set UCODE,      0x600000
	.set UDATA,      0x800000
	.set UDELTA,     0x810000
	.set USTACK_TOP, 0xb00000
	.set BVA,        0x10000000000         /* PML4 slot 2 */
	.set BDATA,      BVA + 0x100000        /* GPA 0xd00000, 128 KiB; FS base of the backend */
	.set BSTACK_TOP, BVA + 0x210000        /* GPA 0xe00000..0xe10000 */
	.set LOCK_VA,    BVA + 0x300000        /* shared memfd page, GPA 0x4000000 */
	.set SECRET_VA,  BVA + 0x400000        /* only in the backend's self-built root */
	.set GATE_PF,    0x8000000000          /* PML4 slot 1: mapped nowhere */
	.set GATE_SYS,   0x1000
	.set GATE_TRAP,  0x700000              /* gate page in caller memory (U, read-only): int3 / ud2 */
	.set GATE_NX,    0x710000              /* the same page mapped NX */
	.set NGATES,     4
	.set SYS_NULL,   0x2000
	.set SYS_FINISH, 0x2fff

	/* caller data (UDATA) */
	.set U_BUF, 0x00
	.set U_OUT, 0x08
	.set U_BAD, 0x10          /* result mismatches */
	.set U_RES, 0x18          /* priv test result (rax) */
	.set U_ITERS, 0x20
	.set U_CYC, 0x28          /* priv test cycles (rdx) */
	.set U_RES2, 0x30         /* priv 5: value of a null syscall after the hijack */
	.set U_REACHED, 0x38      /* iso test: the forbidden access did not fault */
	.set U_TRET, 0x40         /* kernel: TSC after the backend returned (gate_return) */
	.set UDELTA2, 0x8e0000    /* per call: U_TRET - start (the call's way in + backend) */

	.section .rodata.guest, "a"
	.code64

/* ------------------------------------------------------------------ kernel */
	.globl p9k_start, p9k_end, p9k_pf_entry, p9k_vars
	.balign 4096
p9k_start:
	/* emulated ring 0, CR3 = K. rsi = value for 0x4b564d10; r12..r15 = arguments for the caller */
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
	mov $0x4b564d10, %ecx
	mov %rsi, %rax
	mov %rsi, %rdx
	shr $32, %rdx
	wrmsr                          /* native from here */
	mov $UCODE, %rcx
	mov $0x202, %r11
	mov $USTACK_TOP, %rsp
	int $0x19

	.balign 64
sys_entry:
	cmp $SYS_NULL, %rax            /* baseline: null system call */
	jne 1f
	int $0x19
1:	cmp $SYS_FINISH, %rax
	je finish
	sub $GATE_SYS, %rax
	cmp $NGATES, %rax
	jae bad_sys
	mov %rsp, k_ursp(%rip)
	mov %rcx, k_urip(%rip)
	mov %r11, k_urfl(%rip)
	shl $5, %rax
	lea gate_tab(%rip), %r11
	add %rax, %r11
	rdfsbase %rax
	mov %rax, k_ufs(%rip)
	mov 8(%r11), %rax
	wrfsbase %rax
	mov 16(%r11), %rsp
	mov %r10, %rcx                 /* 4th argument, syscall convention */
	call *(%r11)
gate_return:
	mov %rax, k_rax(%rip)          /* diagnostic: TSC after the backend returned -> UDATA + U_TRET */
	mov %rdx, k_rdx(%rip)
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, UDATA + U_TRET
	mov k_rax(%rip), %rax
	mov k_rdx(%rip), %rdx
	mov k_ufs(%rip), %rcx
	wrfsbase %rcx
	mov k_urip(%rip), %rcx
	mov k_urfl(%rip), %r11
	mov k_ursp(%rip), %rsp
	int $0x19
	ud2

/* #PF (vector 14) from any mode; RSP = TSS.RSP0 (or the current stack if from supervisor). */
	.balign 64
p9k_pf_entry:
	push %rcx
	push %rax
	movq $14, k_vec(%rip)
	/* 16 err, 24 rip, 32 cs, 40 rflags, 48 rsp, 56 ss */
	movabs VIF_KVA + 8, %rax       /* CR2 cell */
	cmp 24(%rsp), %rax
	jne pf_bad                     /* not a fetch fault at RIP */
	mov 16(%rsp), %ecx
	and $0x14, %ecx
	cmp $0x14, %ecx                /* user, instruction fetch */
	jne pf_bad
	movabs $GATE_PF, %rcx          /* (b) not-present gate */
	sub %rcx, %rax
	cmp $(NGATES * 64), %rax
	jb trap_common
	add %rcx, %rax
	movabs $GATE_NX, %rcx          /* NX-mapped gate page (present in U, no execute) */
	sub %rcx, %rax
	cmp $(NGATES * 64), %rax
	jb trap_common
pf_bad:
	pop %rax
	pop %rcx
	movabs $(K_STUBS + 14 * 16), %r11
	jmp *%r11                      /* report vector 14 to the VMM (out 0x30) */

/* #BP (vector 3, DPL 3): `int3` at each entry of a gate page mapped in U; RIP = entry + 1 */
	.globl p9k_bp_entry, p9k_ud_entry
	.balign 16
p9k_bp_entry:
	sub $8, %rsp                   /* no error code: make the frame look like #PF's */
	push %rcx
	push %rax
	movq $3, k_vec(%rip)
	testb $3, 32(%rsp)             /* from user mode only */
	jz gate_bad
	mov 24(%rsp), %rax
	dec %rax
	jmp 1f
/* #UD (vector 6): `ud2` at each entry of a gate page mapped in U; RIP = entry */
	.balign 16
p9k_ud_entry:
	sub $8, %rsp
	push %rcx
	push %rax
	movq $6, k_vec(%rip)
	testb $3, 32(%rsp)             /* from user mode only */
	jz gate_bad
	mov 24(%rsp), %rax
1:	sub $GATE_TRAP, %rax
	cmp $(NGATES * 64), %rax
	jae gate_bad
/* rax = offset in the gate range; stack: rax, rcx, then the event frame */
trap_common:
	test $63, %eax
	jnz gate_bad                   /* into the middle of a gate */
	mov 48(%rsp), %rcx
	shr $39, %rcx                  /* caller stack must be in PML4 slot 0 (caller memory) */
	jnz gate_bad
	mov 48(%rsp), %rcx
	mov (%rcx), %r11               /* return address pushed by the user's `call` */
	mov %r11, k_urip(%rip)
	add $8, %rcx
	mov %rcx, k_ursp(%rip)
	mov 40(%rsp), %r11
	mov %r11, k_urfl(%rip)
	shr $1, %rax                   /* 64-byte gate -> 32-byte table entry */
	lea gate_tab(%rip), %r11
	add %rax, %r11
	rdfsbase %rax
	mov %rax, k_ufs(%rip)
	mov 8(%r11), %rax
	wrfsbase %rax
	pop %rax
	pop %rcx
	mov 16(%r11), %rsp             /* the event frame on RSP0 is dropped */
	call *(%r11)
	jmp gate_return
gate_bad:                              /* refused: report to the VMM (out 0x23), RAX = user RIP, RBX = vector */
	mov k_vec(%rip), %rbx
	mov 24(%rsp), %rax
	out %al, $0x23
	hlt

bad_sys:
	add $GATE_SYS, %rax
	out %al, $0x22
	hlt
finish:
	out %al, $0x20
	hlt

	.balign 32
gate_tab:	/* fn, fs base, stack top, - */
	.quad BVA + (b_add - p9b_start), BDATA, BSTACK_TOP, 0
	.quad BVA + (b_lock - p9b_start), BDATA, BSTACK_TOP, 0
	.quad BVA + (b_priv - p9b_start), BDATA, BSTACK_TOP, 0
	.quad BVA + (b_barrier - p9b_start), BDATA, BSTACK_TOP, 0
p9k_vars:
k_ursp:	.quad 0
k_urip:	.quad 0
k_urfl:	.quad 0
k_ufs:	.quad 0
k_vec:	.quad 0
k_rax:	.quad 0
k_rdx:	.quad 0
p9k_end:

/* ------------------------------------------------------------------ caller (user mode, root U) */
	.globl p9u_start, p9u_end
	.balign 4096
p9u_start:
	/* r12 = iters, r13 = mode, r14 = sub, r15 = vm id */
	mov %r12, UDATA + U_ITERS
	mov $0x1234, %eax
	wrfsbase %rax                  /* caller's own FS base, must survive the call */
	mov %r12, %rbx
	mov $UDELTA, %rbp
	test %rbx, %rbx
	jz after
	cmp $4, %r13
	jne loop
	mov $(GATE_SYS + 3), %eax      /* lock mode: barrier across the two VMs first */
	syscall
loop:
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r15
	mov $(UDATA + U_BUF), %edi
	mov %rbx, %rsi
	mov $(UDATA + U_OUT), %edx
	cmp $1, %r13
	je m1
	cmp $2, %r13
	je m2
	cmp $3, %r13
	je m3
	cmp $4, %r13
	je m4
	cmp $5, %r13
	je m1
	cmp $6, %r13
	je m1
	cmp $7, %r13
	je m7
	cmp $9, %r13
	je m9
	cmp $8, %r13
	je m7
m0:	mov $SYS_NULL, %eax            /* null syscall, no gate */
	syscall
	jmp done
m1:	mov $GATE_SYS, %eax            /* (a) syscall gate 0 */
	syscall
	jmp done
m2:	movabs $GATE_PF, %rax          /* (b) #PF gate 0 */
	call *%rax
	jmp done
m3:	call u_add                     /* plain in-process call, for scale */
	jmp done
m7:	mov $GATE_TRAP, %eax           /* int3 / ud2 gate page */
	call *%rax
	jmp done
m9:	mov $GATE_NX, %eax             /* NX gate page */
	call *%rax
	jmp done
m4:	mov %r14, %rdi                 /* lock gate: rdi = 1 lock, 0 no lock */
	mov $(GATE_SYS + 1), %eax
	syscall
done:
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	sub %r15, %rdx
	mov %rdx, (%rbp)
	mov UDATA + U_TRET, %rax
	sub %r15, %rax
	mov %rax, UDELTA2 - UDELTA(%rbp)
	add $8, %rbp
	test %r13, %r13
	jz 2f
	cmp $4, %r13
	je 2f
	mov UDATA + U_BUF, %rax        /* check out == buf + i + 1000 (1000 read via the backend's FS) */
	add %rbx, %rax
	add $1000, %rax
	cmp UDATA + U_OUT, %rax
	je 1f
	incq UDATA + U_BAD
1:	rdfsbase %rax
	cmp $0x1234, %rax
	je 1f
	incq UDATA + U_BAD
1:	incq UDATA + U_BUF
2:	dec %rbx
	jnz loop
after:
	cmp $5, %r13
	je priv
	cmp $6, %r13
	je iso
fin:	mov $SYS_FINISH, %eax
	syscall
	ud2

priv:	/* the backend's privileged operations: gate 2, rdi = test */
	mov %r14, %rdi
	mov $(GATE_SYS + 2), %eax
	syscall
	mov %rax, UDATA + U_RES
	mov %rdx, UDATA + U_CYC
	cmp $5, %r14
	jne fin
	mov $SYS_NULL, %eax            /* after the backend rewrote LSTAR */
	syscall
	mov %rax, UDATA + U_RES2
	jmp fin

iso:	/* forbidden accesses from the caller; each must fault to the VMM (out 0x30 vector) */
	cmp $1, %r14
	jne 1f
	movabs $BDATA, %rax            /* read backend data */
	mov (%rax), %rax
	jmp reached
1:	cmp $2, %r14
	jne 1f
	movabs $(BVA + (b_add - p9b_start)), %rax   /* call the backend function directly */
	call *%rax
	jmp reached
1:	cmp $3, %r14
	jne 1f
	movabs $(GATE_PF + 8), %rax    /* call into the middle of gate 0 */
	call *%rax
	jmp reached
1:	cmp $4, %r14
	jne 1f
	movabs $(GATE_PF + NGATES * 64), %rax   /* one past the last gate */
	call *%rax
	jmp reached
1:	cmp $5, %r14
	jne 1f
	movabs $LOCK_VA, %rax          /* the shared lock page */
	movl $1, (%rax)
	jmp reached
1:	cmp $6, %r14
	jne 1f
	movabs $KVA, %rax              /* kernel text */
	mov (%rax), %rax
	jmp reached
1:	cmp $7, %r14
	jne 1f
	mov $(UDATA + U_BUF), %edi     /* jmp (no push) to gate 0 with RSP in backend memory: */
	movabs $BDATA, %rsp            /* the stub must not take [RSP] from there as return address */
	movabs $GATE_PF, %rax
	jmp *%rax
1:	cmp $8, %r14
	jne 1f
	mov $0x1001, %eax              /* hypercall SET_CR3 from user mode */
	mov $0x10000, %ebx
	int $0x1b
	jmp reached
1:	cmp $9, %r14
	jne 1f
	mov $0xc0000082, %ecx          /* wrmsr LSTAR from user mode */
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
	jmp reached
1:	cmp $10, %r14
	jne reached
	mov %cr3, %rax
reached:
	movq $1, UDATA + U_REACHED
	jmp fin

u_add:	mov (%rdi), %rax
	add %rsi, %rax
	add $1000, %rax
	mov %rax, (%rdx)
	ret
p9u_end:

/* ------------------------------------------------------------------ backend (guest supervisor, root K) */
	.globl p9b_start, p9b_end, p9b_vars
	.balign 4096
p9b_start:
b_add:	/* rdi = caller buffer, rsi = addend, rdx = caller out pointer */
	mov (%rdi), %rax
	add %rsi, %rax
	add %fs:8, %rax                /* 1000, from the backend's TLS: fails unless FS was switched */
	mov %rax, (%rdx)
	incq b_calls(%rip)
	ret

b_lock:	/* rdi = 1: take the cross-VM spin lock around a non-atomic increment */
	movabs $LOCK_VA, %r8
	test %rdi, %rdi
	jz 2f
1:	mov $1, %eax
	xchg %eax, (%r8)
	test %eax, %eax
	jz 2f
3:	pause
	incq b_spins(%rip)
	cmpl $0, (%r8)
	jne 3b
	jmp 1b
2:	mov 8(%r8), %rax               /* read ... */
	mov $20, %ecx
4:	dec %ecx
	jnz 4b
	inc %rax
	mov %rax, 8(%r8)               /* ... write: loses updates without the lock */
	test %rdi, %rdi
	jz 5f
	movl $0, (%r8)
5:	incq b_calls(%rip)
	ret

b_barrier:
	movabs $LOCK_VA, %r8
	lock incq 16(%r8)
	mov $2000000000, %ecx
1:	cmpq $2, 16(%r8)
	jae 2f
	pause
	dec %rcx
	jnz 1b
2:	ret

b_priv:	/* rdi = test; returns rax = result, rdx = TSC cycles of the operation */
	push %rbx
	push %r12
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r12
	cmp $1, %rdi
	jne 1f
	mov $0xc0000082, %ecx          /* rdmsr LSTAR */
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	jmp pdone
1:	cmp $2, %rdi
	jne 1f
	mov %cr3, %rax                 /* read CR3 */
	jmp pdone
1:	cmp $3, %rdi
	jne 1f
	mov $0x99, %eax
	out %al, $0x99                 /* port I/O to the VMM */
	jmp pdone
1:	cmp $4, %rdi
	jne 1f
	call build_root                /* page tables in backend memory mapping a page K does not map */
	mov $0x1001, %eax
	mov $0xd10000, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b                      /* HC_SET_CR3 to the self-built root */
	movabs SECRET_VA, %rax
	mov %rax, %r9
	mov $0x1001, %eax
	mov $0x10000, %ebx             /* and back to K */
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b
	mov %r9, %rax
	jmp pdone
1:	cmp $5, %rdi
	jne 1f
	mov $0xc0000082, %ecx          /* rewrite LSTAR: the caller's next syscall lands here */
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, b_saved_lstar(%rip)
	lea b_hijack(%rip), %rax
	mov %rax, %rdx
	shr $32, %rdx
	mov $0xc0000082, %ecx
	wrmsr
	xor %eax, %eax
	jmp pdone
1:	cmp $6, %rdi
	jne 1f
	cli                            /* IF manipulation */
	sti
	mov $6, %eax
	jmp pdone
1:	cmp $7, %rdi
	jne 1f
	mov $0x1007, %eax              /* HC_FLUSH_TLB */
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	int $0x1b
	jmp pdone
1:	cmp $8, %rdi
	jne 1f
	movabs $KVA, %rax              /* write the kernel's own text (same hardware privilege) */
	mov (%rax), %rcx
	mov %rcx, (%rax)
	mov %rcx, %rax
	jmp pdone
1:	mov $-1, %rax
pdone:	mov %rax, %rcx
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	sub %r12, %rdx
	mov %rcx, %rax
	pop %r12
	pop %rbx
	ret

/* root at GPA 0xd10000 (BDATA + 0x10000): backend code, stack, and the secret page GPA 0x2000000 */
build_root:
	push %rdi
	movabs $(BDATA + 0x10000), %rdi
	mov $(0x7000 / 8), %ecx
	xor %eax, %eax
	rep stosq
	movabs $(BDATA + 0x10000), %rdi
	movq $(0xd12000 | 7), 2 * 8(%rdi)              /* PML4[2] -> PDPT */
	movq $(0xd13000 | 7), 0x2000(%rdi)             /* PDPT[0] -> PD */
	movq $(0xd14000 | 7), 0x3000(%rdi)             /* PD[0] -> PT code */
	movq $(0xd15000 | 7), 0x3008(%rdi)             /* PD[1] -> PT stack */
	movq $(0xd16000 | 7), 0x3010(%rdi)             /* PD[2] -> PT secret */
	xor %ecx, %ecx
1:	mov %rcx, %rax
	shl $12, %rax
	add $0xc00007, %rax
	mov %rax, 0x4000(%rdi,%rcx,8)
	add $(0xe00000 - 0xc00000), %rax
	mov %rax, 0x5000(%rdi,%rcx,8)
	inc %ecx
	cmp $16, %ecx
	jb 1b
	movq $(0x2000000 | 7), 0x6000(%rdi)
	pop %rdi
	ret

b_hijack:	/* reached by the caller's `syscall` after test 5 */
	cmp $SYS_FINISH, %rax
	je 1f
	incq b_hijacks(%rip)
	mov $0xbadc0de, %eax
	int $0x19
1:	mov %rcx, b_tmp(%rip)          /* put LSTAR back and go to the real kernel */
	mov b_saved_lstar(%rip), %rax
	mov %rax, %rdx
	shr $32, %rdx
	mov $0xc0000082, %ecx
	wrmsr
	mov b_tmp(%rip), %rcx
	mov $SYS_FINISH, %eax
	jmp *b_saved_lstar(%rip)

	.balign 8
p9b_vars:
b_calls:	.quad 0
b_spins:	.quad 0
b_hijacks:	.quad 0
b_saved_lstar:	.quad 0
b_tmp:	.quad 0
p9b_end:
	.section .note.GNU-stack,"",@progbits
