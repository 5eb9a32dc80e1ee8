/* probe2: from emulated ring 0 (plain 64-bit long mode set up via SREGS),
 * what does the guest see: synthetic PVM CPUID, rdmsr/wrmsr of the PVM MSRs
 * (with KVM_CAP_X86_USER_SPACE_MSR enabled so unknown MSRs exit to us). */
#include "guest.h"

extern const uint8_t gstubs_start[], gstubs_end[], p2_start[], p2_end[];
#define STUBS_GPA (CODE_GPA + 0x8000)

static int run_test(uint64_t test, uint64_t arg, uint64_t val, int usermsr, const char *label)
{
	struct guest g;
	guest_init(&g, 1);
	if (usermsr) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_USER_SPACE_MSR };
		cap.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_FILTER;
		if (ioctl(g.vm, KVM_ENABLE_CAP, &cap) < 0) printf("  enable USER_SPACE_MSR failed errno=%d\n", errno);
	}
	memcpy(g.mem + CODE_GPA, p2_start, p2_end - p2_start);
	memcpy(g.mem + STUBS_GPA, gstubs_start, gstubs_end - gstubs_start);
	pt_map_range(&g, g.pml4, 0, 0, 8 << 20, PTE_W);    /* identity 8 MiB, supervisor */
	idt_fill(&g, STUBS_GPA);
	set_long_mode(&g, g.pml4, 0);
	struct kvm_regs r = { .rip = CODE_GPA, .rsp = KSTACK_GPA + 0x100000, .rflags = 2, .rdi = test, .rsi = arg, .r8 = val };
	if (ioctl(g.vcpu, KVM_SET_REGS, &r) < 0) DIE("SET_REGS");
	printf("== %s\n", label);
	double t0 = now_us();
	int x = run_once(&g, 5);
	double t1 = now_us();
	if (x == KVM_EXIT_X86_RDMSR || x == KVM_EXIT_X86_WRMSR) {
		printf("  exit X86_%sMSR index=%x reason=%u data=%llx\n", x == KVM_EXIT_X86_RDMSR ? "RD" : "WR",
		       g.run->msr.index, g.run->msr.reason, (unsigned long long)g.run->msr.data);
		g.run->msr.error = 1;
		x = run_once(&g, 5);
	}
	report_exit(&g, x);
	printf("  (run took %.1f us)\n", t1 - t0);
	close(g.vcpu); close(g.vm); close(g.kvm); munmap(g.mem, MEM_SIZE);
	return x;
}

int main(int argc, char **argv)
{
	char lbl[128];
	run_test(0, 0x40000000, 0, 0, "synthetic cpuid 0x40000000 (ring 0)");
	run_test(0, 0x40000001, 0, 0, "synthetic cpuid 0x40000001");
	run_test(0, 0x40000002, 0, 0, "synthetic cpuid 0x40000002");
	run_test(1, 0x40000000, 0, 0, "plain cpuid 0x40000000");
	for (uint32_t m = 0x4b564df0; m <= 0x4b564df7; m++) {
		snprintf(lbl, sizeof lbl, "rdmsr %x (user-space-msr exits on)", m);
		run_test(2, m, 0, 1, lbl);
	}
	run_test(3, MSR_PVM_LINEAR_ADDRESS_RANGE, 0, 1, "wrmsr 4b564df0 = 0 (user-space-msr exits on)");
	run_test(3, MSR_PVM_VCPU_STRUCT, 0x200000, 1, "wrmsr 4b564df1 = 0x200000");
	run_test(3, MSR_PVM_EVENT_ENTRY, 0x100000, 1, "wrmsr 4b564df4 = 0x100000");
	run_test(2, MSR_LSTAR, 0, 1, "rdmsr LSTAR (control)");
	run_test(4, 1000, 0, 0, "loop 1000 iterations (ring 0)");
	run_test(4, 10000, 0, 0, "loop 10000 iterations (ring 0)");
	return 0;
}
