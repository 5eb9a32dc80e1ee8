/* probe6: write MSR 0x4b564d10 (a guest-only writable MSR found by probe5)
 * from emulated ring 0 with a page-aligned GPA, with the code at a low or an
 * upper-half address and pages mapped with or without the U bit; then time a
 * ring-0 loop and sample %cs to see whether the code now runs natively.
 * usage: probe6_enable [code_va] [msr_value] [iters] [U(0/1)] */
#include "guest.h"

extern const uint8_t gstubs_start[], gstubs_end[], p6_start[], p6_end[];

int main(int argc, char **argv)
{
	uint64_t code_va = argc > 1 ? strtoull(argv[1], 0, 0) : 0xffffd90000000000ull;
	uint64_t val = argc > 2 ? strtoull(argv[2], 0, 0) : DATA_GPA;
	uint64_t iters = argc > 3 ? strtoull(argv[3], 0, 0) : 2000;
	int user = argc > 4 ? atoi(argv[4]) : 0;
	uint64_t rflags = argc > 5 ? strtoull(argv[5], 0, 0) : 2;
	struct guest g;
	guest_init(&g, 1);
	memcpy(g.mem + CODE_GPA, p6_start, p6_end - p6_start);
	memcpy(g.mem + CODE_GPA + 0x8000, gstubs_start, gstubs_end - gstubs_start);
	uint64_t f = PTE_W | (user ? PTE_U : 0);
	pt_map_range(&g, g.pml4, 0, 0, 8 << 20, f);
	if (code_va >= (8 << 20)) pt_map_range(&g, g.pml4, code_va, CODE_GPA, 0x10000, f);
	uint64_t stack_va = code_va >= (8 << 20) ? code_va + 0x100000 : KSTACK_GPA + 0x100000;
	if (code_va >= (8 << 20)) pt_map_range(&g, g.pml4, code_va + 0x80000, KSTACK_GPA, 0x80000, f);
	idt_fill(&g, code_va + 0x8000);
	memset(g.mem + DATA_GPA, 0xa5, 0x1000);   /* pattern, to see what the hypervisor writes */
	set_long_mode(&g, g.pml4, 0);
	struct kvm_regs r = { .rip = code_va, .rsp = stack_va - 0x80000 + 0x80000, .rflags = rflags, .rdi = iters, .rsi = val };
	r.rsp = code_va >= (8 << 20) ? code_va + 0x100000 : KSTACK_GPA + 0x100000;
	if (ioctl(g.vcpu, KVM_SET_REGS, &r) < 0) DIE("SET_REGS");
	printf("code_va=%llx msr val=%llx iters=%llu U=%d rflags=%llx\n", (unsigned long long)code_va, (unsigned long long)val,
	       (unsigned long long)iters, user, (unsigned long long)rflags);
	for (int i = 0; i < 4; i++) {
		double t0 = now_us();
		int x = run_once(&g, 3);
		double t1 = now_us();
		printf("run %d: %.1f us\n", i, t1 - t0);
		report_exit(&g, x);
		if (x == KVM_EXIT_IO && g.run->io.port == 0x20) {
			ioctl(g.vcpu, KVM_GET_REGS, &r);
			printf("  cs before=%llx after-wrmsr=%llx at-end=%llx rflags=%llx loop=%llu tsc cycles (%.2f/iter) msr now=%llx\n",
			       r.r8, r.r9, r.r12, r.r13, r.r11 - r.r10, (double)(r.r11 - r.r10) / iters, r.r14);
			break;
		}
		if (x != -EINTR) break;
	}
	uint64_t *pg = (uint64_t *)(g.mem + DATA_GPA);
	printf("struct page at %llx, qwords changed from the 0xa5 pattern:\n", (unsigned long long)DATA_GPA);
	for (int i = 0; i < 512; i++) if (pg[i] != 0xa5a5a5a5a5a5a5a5ull) printf("  +0x%03x: %016llx\n", i * 8, (unsigned long long)pg[i]);
	uint64_t v;
	if (get_msr(g.vcpu, 0x4b564d10, &v) == 1) printf("host view of 0x4b564d10 = %llx\n", (unsigned long long)v);
	return 0;
}
