/* probe7: user<->supervisor round trips once supervisor code runs natively.
 * usage: probe7_syscall [mode 0=sysretq 1=iretq] [iters] [enable_value]
 * Reports the exit, the %cs seen at each stage, and p50/p99 of the guest
 * rdtsc deltas around each `syscall` (user -> LSTAR handler -> back). */
#include "guest.h"
#include <math.h>

extern const uint8_t gstubs_start[], gstubs_end[], p7_start[], p7_end[], p7_kcr3[], p7_ucr3[];
#define CODE_VA 0xffffd90000000000ull
#define BUF_GPA (DATA_GPA + 0x10000)

static int cmpu(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t g_priv;
static double run_case(int mode, uint64_t iters, uint64_t enable, int verbose, double *p50, double *p99, uint64_t *count)
{
	struct guest g;
	guest_init(&g, 1);
	memcpy(g.mem + CODE_GPA, p7_start, p7_end - p7_start);
	memcpy(g.mem + CODE_GPA + 0x8000, gstubs_start, gstubs_end - gstubs_start);
	uint64_t f = PTE_W | PTE_U;
	uint64_t uroot = g.pml4 + 0x1000;   /* KPTI-style pair: user root = kernel root + 4 KiB */
	if (mode == 2) g.pt_next += 0x1000;
	pt_map_range(&g, g.pml4, 0, 0, 8 << 20, f);            /* low 8 MiB identity, user-accessible */
	pt_map_range(&g, g.pml4, CODE_VA, CODE_GPA, 0x10000, f);
	pt_map_range(&g, g.pml4, CODE_VA + 0x80000, KSTACK_GPA, 0x80000, f);
	idt_fill(&g, CODE_VA + 0x8000);
	if (mode == 2) {
		memcpy(g.mem + uroot, g.mem + g.pml4, 0x1000);
		*(uint64_t *)(g.mem + CODE_GPA + (p7_kcr3 - p7_start)) = g.pml4;
		*(uint64_t *)(g.mem + CODE_GPA + (p7_ucr3 - p7_start)) = uroot;
	}
	/* a TSS with rsp0 (for standard x86 event delivery from user mode) */
	uint64_t *tss = gptr(&g, 0x3000);
	memset(tss, 0, 0x68);
	*(uint64_t *)((uint8_t *)tss + 4) = CODE_VA + 0xf0000;
	if (enable) memset(g.mem + (enable & ~0xfffull), 0xa5, 0x1000);
	set_long_mode(&g, g.pml4, 0);
	struct kvm_regs r = { .rip = CODE_VA, .rsp = CODE_VA + 0x100000, .rflags = 2, .rdi = iters, .rsi = enable, .rdx = mode,
			      .rbx = USTACK_GPA + 0x100000, .r12 = BUF_GPA, .rbp = g_priv };
	if (ioctl(g.vcpu, KVM_SET_REGS, &r) < 0) DIE("SET_REGS");
	double t0 = now_us();
	int x = run_once(&g, 20);
	double t1 = now_us();
	ioctl(g.vcpu, KVM_GET_REGS, &r);
	if (verbose || !(x == KVM_EXIT_IO && g.run->io.port == 0x20)) {
		report_exit(&g, x);
	}
	if (x == KVM_EXIT_IO && g.run->io.port == 0x20) {
		if (verbose)
			printf("  count=%llu cs: boot=%llx after-enable=%llx user=%llx syscall-handler=%llx\n", r.rax, r.r8, r.r9, r.r10, r.r11);
		*count = r.rax;
		uint64_t *d = (uint64_t *)(g.mem + BUF_GPA);
		uint64_t *e = (uint64_t *)(g.mem + BUF_GPA + 0x100000);
		if (iters) {
			qsort(e, iters, 8, cmpu);
			printf("  entry part (user syscall -> first handler insn): p50 %llu cycles, p99 %llu\n",
			       (unsigned long long)e[iters / 2], (unsigned long long)e[iters * 99 / 100]);
			qsort(d, iters, 8, cmpu);
			*p50 = d[iters / 2];
			*p99 = d[(iters * 99) / 100];
		}
	} else *count = 0;
	if (verbose && enable) {
		uint64_t *pg = (uint64_t *)(g.mem + (enable & ~0xfffull));
		printf("  struct page %llx, qwords changed from 0xa5 pattern:", (unsigned long long)(enable & ~0xfffull));
		for (int i = 0; i < 512; i++) if (pg[i] != 0xa5a5a5a5a5a5a5a5ull) printf(" +0x%03x=%016llx", i * 8, (unsigned long long)pg[i]);
		printf("\n");
	}
	close(g.vcpu); close(g.vm); close(g.kvm); munmap(g.mem, MEM_SIZE);
	return t1 - t0;
}

int main(int argc, char **argv)
{
	int mode = argc > 1 ? atoi(argv[1]) : 0;
	uint64_t iters = argc > 2 ? strtoull(argv[2], 0, 0) : 10000;
	uint64_t enable = argc > 3 ? strtoull(argv[3], 0, 0) : DATA_GPA;
	if (argc > 4) {   /* privilege check: does guest user code get faults for mov %cr3? */
		g_priv = 1;
		double a, b; uint64_t c;
		printf("privilege check, mode=%s enable=%llx: user executes mov %%cr3,%%rax then out 0x21\n", mode ? "iretq" : "sysretq", (unsigned long long)enable);
		run_case(mode, 1, enable, 1, &a, &b, &c);
		return 0;
	}
	/* TSC kHz from the custom read-only MSR 0x4b564d13 */
	struct guest tmp; guest_init(&tmp, 0);
	uint64_t khz = 0; get_msr(tmp.vcpu, 0x4b564d13, &khz);
	close(tmp.vcpu); close(tmp.vm); close(tmp.kvm); munmap(tmp.mem, MEM_SIZE);
	if (!khz) khz = 2500000;
	double p50 = 0, p99 = 0; uint64_t count;
	printf("mode=%s iters=%llu enable=%llx tsc_khz=%llu\n", mode == 2 ? "sysretq+cr3 switch (KPTI-like)" : mode ? "iretq" : "sysretq", (unsigned long long)iters,
	       (unsigned long long)enable, (unsigned long long)khz);
	double base = run_case(mode, 0, enable, 0, &p50, &p99, &count);
	double tot = run_case(mode, iters, enable, 1, &p50, &p99, &count);
	printf("  KVM_RUN wall: %.1f us with 0 iters, %.1f us with %llu -> %.3f us per round trip (clock_gettime)\n", base, tot,
	       (unsigned long long)iters, (tot - base) / (iters ? iters : 1));
	if (count == iters && iters)
		printf("  guest rdtsc per round trip: p50 %.0f cycles = %.3f us, p99 %.0f cycles = %.3f us\n", p50, p50 / khz * 1000,
		       p99, p99 / khz * 1000);
	return 0;
}
