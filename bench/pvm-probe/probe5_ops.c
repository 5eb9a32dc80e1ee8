/* probe5: from emulated ring 0, scan (a) rdmsr and wrmsr over the KVM/PVM
 * paravirt MSR block 0x4b564d00..0x4b564dff and (b) hypercall numbers via
 * vmcall/vmmcall (KVM ones 1..13 and the PVM block 0x17088200..), to find the
 * guest-visible interface of this kvm_pvm.  Faults are caught and recorded;
 * MSRs KVM does not know exit to userspace (KVM_CAP_X86_USER_SPACE_MSR). */
#include "guest.h"

extern const uint8_t gstubs_start[], gstubs_end[], p5_start[], p5_end[], p5_gp[], p5_ud[];
#define STUBS_GPA (CODE_GPA + 0x8000)
#define TABLE_GPA DATA_GPA
#define FAULT_GPA (DATA_GPA + 0x100000)

struct op { uint64_t op, arg, val, out; };

static int g_user = 0;
static void run_table(struct op *ops, int n, const char *title)
{
	struct guest g;
	guest_init(&g, 1);
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_USER_SPACE_MSR };
	cap.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_INVAL;
	if (ioctl(g.vm, KVM_ENABLE_CAP, &cap) < 0) DIE("USER_SPACE_MSR");
	memcpy(g.mem + CODE_GPA, p5_start, p5_end - p5_start);
	memcpy(g.mem + STUBS_GPA, gstubs_start, gstubs_end - gstubs_start);
	pt_map_range(&g, g.pml4, 0, 0, 8 << 20, PTE_W | (g_user ? PTE_U : 0));
	idt_fill(&g, STUBS_GPA);
	/* patch #GP and #UD gates to the recovering handlers */
	uint64_t *idt = gptr(&g, IDT_GPA);
	uint64_t hv[2] = { CODE_GPA + (p5_gp - p5_start), CODE_GPA + (p5_ud - p5_start) };
	int vec[2] = { 13, 6 };
	for (int i = 0; i < 2; i++) {
		uint64_t off = hv[i];
		idt[2 * vec[i]] = (off & 0xffff) | ((uint64_t)SEL_KCS << 16) | (0x8eull << 40) | ((off >> 16 & 0xffff) << 48);
		idt[2 * vec[i] + 1] = off >> 32;
	}
	memcpy(g.mem + TABLE_GPA, ops, n * sizeof *ops);
	((struct op *)(g.mem + TABLE_GPA))[n].op = (uint64_t)-1;
	set_long_mode(&g, g.pml4, 0);
	struct kvm_regs r = { .rip = CODE_GPA, .rsp = KSTACK_GPA + 0x100000, .rflags = 2, .rbx = TABLE_GPA, .rbp = FAULT_GPA };
	if (ioctl(g.vcpu, KVM_SET_REGS, &r) < 0) DIE("SET_REGS");
	char *exitnote[4096] = {0};
	uint32_t exitidx[4096]; int nexit = 0;
	printf("== %s\n", title);
	for (int iter = 0; iter < 5000; iter++) {
		int x = run_once(&g, getenv("T") ? atoi(getenv("T")) : 10);
		if (x == KVM_EXIT_X86_RDMSR || x == KVM_EXIT_X86_WRMSR) {
			if (nexit < 4096) { exitidx[nexit] = g.run->msr.index; exitnote[nexit] = g.run->msr.reason == 2 ? "unknown" : g.run->msr.reason == 1 ? "inval" : "filter"; nexit++; }
			g.run->msr.error = 0; g.run->msr.data = 0xdeadbeefull;
			continue;
		}
		if (x == KVM_EXIT_IO && g.run->io.port == 0x20) break;
		printf("  unexpected stop:\n");
		report_exit(&g, x);
		break;
	}
	struct op *res = (struct op *)(g.mem + TABLE_GPA);
	uint64_t *faults = (uint64_t *)(g.mem + FAULT_GPA);
	for (int i = 0; i < n; i++) {
		const char *note = "";
		for (int k = 0; k < nexit; k++) if (exitidx[k] == res[i].arg && res[i].op < 2) note = exitnote[k];
		if (res[i].op >= 5) { printf("  op=%llu leaf=%llx -> eax/ebx=%016llx ecx/edx=%016llx fault=%llu\n", (unsigned long long)res[i].op, (unsigned long long)res[i].arg, (unsigned long long)res[i].out, (unsigned long long)res[i].val, (unsigned long long)faults[i]); continue; }
		int interesting = (faults[i] == 0 && res[i].out != 0xdeadbeefull && res[i].op == 0) || (res[i].op == 1 && !*note);
		if (res[i].op >= 2) interesting = 1;
		if (interesting || getenv("ALL"))
			printf("  op=%llu arg=%llx val=%llx -> out=%llx fault=%llu %s\n", (unsigned long long)res[i].op,
			       (unsigned long long)res[i].arg, (unsigned long long)res[i].val, (unsigned long long)res[i].out,
			       (unsigned long long)faults[i], note);
	}
	close(g.vcpu); close(g.vm); close(g.kvm); munmap(g.mem, MEM_SIZE);
}

int main(int argc, char **argv)
{
	static struct op ops[4096];
	int n = 0;
	const char *mode = argc > 1 ? argv[1] : "all";
	if (!strcmp(mode, "all") || !strcmp(mode, "rdmsr")) {
		for (uint32_t m = 0x4b564d00; m <= 0x4b564dff; m++) ops[n++] = (struct op){ 0, m, 0, 0 };
		run_table(ops, n, "guest rdmsr 0x4b564d00..ff (printed: handled in-kernel without fault)");
	}
	if (!strcmp(mode, "all") || !strcmp(mode, "wrmsr")) {
		n = 0;
		for (uint32_t m = 0x4b564d08; m <= 0x4b564dff; m++) ops[n++] = (struct op){ 1, m, 0, 0 };
		run_table(ops, n, "guest wrmsr 0 to 0x4b564d08..ff (no note: accepted in-kernel; unknown/inval: KVM refused)");
	}
	if (!strcmp(mode, "msr")) {   /* ./probe5_ops msr IDX VAL [IDX VAL ...]: write then read back */
		n = 0;
		for (int i = 2; i + 1 < argc; i += 2) {
			uint64_t m = strtoull(argv[i], 0, 0), v = strtoull(argv[i + 1], 0, 0);
			ops[n++] = (struct op){ 0, m, 0, 0 };
			ops[n++] = (struct op){ 1, m, v, 0 };
			ops[n++] = (struct op){ 0, m, 0, 0 };
		}
		setenv("ALL", "1", 1);
		run_table(ops, n, "guest rdmsr / wrmsr / rdmsr");
	}
	if (!strcmp(mode, "native-scan")) {   /* enable native supervisor first, then scan rd/wr */
		g_user = 1;
		n = 0;
		ops[n++] = (struct op){ 1, 0x4b564d10, 0x7f0000, 0 };
		for (uint32_t m = 0x4b564d00; m <= 0x4b564dff; m++) ops[n++] = (struct op){ 0, m, 0, 0 };
		run_table(ops, n, "native: guest rdmsr 0x4b564d00..ff (printed: handled in-kernel without fault)");
		n = 0;
		ops[n++] = (struct op){ 1, 0x4b564d10, 0x7f0000, 0 };
		for (uint32_t m = 0x4b564d11; m <= 0x4b564dff; m++) ops[n++] = (struct op){ 1, m, 0, 0 };
		run_table(ops, n, "native: guest wrmsr 0 to 0x4b564d11..ff");
	}
	if (!strcmp(mode, "native-hc")) {   /* enable native, then `syscall` hypercalls from supervisor */
		g_user = 1;
		n = 0;
		ops[n++] = (struct op){ 1, 0x4b564d10, 0x7f0000, 0 };
		for (uint64_t h = 0x17088200; h <= 0x1708820a; h++) if (h != 0x17088202) ops[n++] = (struct op){ 4, h, 0, 0 };
		for (uint64_t h = 1; h <= 12; h++) if (h != 5) ops[n++] = (struct op){ 4, h, 0, 0 };
		ops[n++] = (struct op){ 4, 0x12345, 0, 0 };
		run_table(ops, n, "native: syscall from supervisor (rax=nr); -1000 = -KVM_ENOSYS");
	}
	if (!strcmp(mode, "native-vmcall")) {   /* enable native, then vmcall/vmmcall NR */
		g_user = 1;
		n = 0;
		ops[n++] = (struct op){ 1, 0x4b564d10, 0x7f0000, 0 };
		for (int i = 2; i < argc; i++) ops[n++] = (struct op){ 2, strtoull(argv[i], 0, 0), 0, 0 };
		for (int i = 2; i < argc; i++) ops[n++] = (struct op){ 3, strtoull(argv[i], 0, 0), 0, 0 };
		run_table(ops, n, "native: vmcall then vmmcall (rax=nr, rbx=0); -1000 = -KVM_ENOSYS");
	}
	if (!strcmp(mode, "cpuid") || !strcmp(mode, "native-cpuid")) {
		g_user = 1;
		n = 0;
		if (mode[0] == 'n') ops[n++] = (struct op){ 1, 0x4b564d10, 0x7f0000, 0 };
		for (uint64_t l = 0x40000000; l <= 0x40000004; l++) { ops[n++] = (struct op){ 5, l, 0, 0 }; ops[n++] = (struct op){ 6, l, 0, 0 }; }
		setenv("ALL", "1", 1);
		run_table(ops, n, "op5 = synthetic cpuid, op6 = plain cpuid; out = eax|ebx<<32, val = ecx|edx<<32");
	}
	if (!strcmp(mode, "hc")) {   /* ./probe5_ops hc NR [RBX]: one vmcall */
		ops[0] = (struct op){ 2, strtoull(argv[2], 0, 0), argc > 3 ? strtoull(argv[3], 0, 0) : 0, 0 };
		ops[1] = (struct op){ 3, strtoull(argv[2], 0, 0), argc > 3 ? strtoull(argv[3], 0, 0) : 0, 0 };
		run_table(ops, 2, "vmcall then vmmcall");
	}
	return 0;
}
