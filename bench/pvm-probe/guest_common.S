/* Guest-side pieces shared by the probes.  Position independent: the host
 * copies [gstubs_start, gstubs_end) anywhere. */
	.section .rodata.guest, "a"
	.code64
	.globl gstubs_start, gstubs_end
	.balign 16
gstubs_start:
	/* 32 exception stubs + one for everything else; each 16 bytes */
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,255
	.balign 16
	mov $\v, %eax
	jmp 1f
	.endr
	.balign 16
1:	/* report: al=vector, rbx=[rsp], rcx=[rsp+8], rdx=[rsp+16], rsi=[rsp+24] */
	mov (%rsp), %rbx
	mov 8(%rsp), %rcx
	mov 16(%rsp), %rdx
	mov 24(%rsp), %rsi
	mov $0x30, %di
	xchg %di, %dx
	out %al, %dx
	hlt
	jmp 1b
gstubs_end:
	.section .note.GNU-stack,"",@progbits
