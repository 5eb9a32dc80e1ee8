/* probe8: kvm_pvm direct switching, as reverse-engineered from the host kernel
 * (see README "Direct switching: the recipe").
 *   usage: probe8_ds [flags] [iters] [ret 0=int$0x19 1=int$0x17] [far 0..6] [priv 0/1]
 * flags are OR'd into the MSR 0x4b564d10 value (GPA of the vIF page):
 *   bit0 kpti, bit1 preflip (GS), bit2 preflip_syscall, bit3 ds_iret,
 *   bit4 cr2 cell, bits 2|3|6 = eretu, bits 1|2|5 = kentry.
 * Page tables: pair A = kernel root 0x10000 / user root 0x11000 (= kernel|0x1000),
 *              pair B = 0x12000 / 0x13000 (used by far mode).
 * Prints p50/p99 of user `syscall` -> handler -> back (guest rdtsc). */
#include "guest.h"

extern const uint8_t gstubs_start[], gstubs_end[], p8_start[], p8_end[], p8_user_entry[];
#define CODE_VA 0xffffd90000000000ull
#define BUF_GPA (DATA_GPA + 0x10000)
#define VIF_GPA DATA_GPA

static int cmpu(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	uint64_t flags = argc > 1 ? strtoull(argv[1], 0, 0) : 0x4f;
	uint64_t iters = argc > 2 ? strtoull(argv[2], 0, 0) : 10000;
	int mode = argc > 3 ? atoi(argv[3]) : 0;
	int far = argc > 4 ? atoi(argv[4]) : 0;
	int priv = argc > 5 ? atoi(argv[5]) : 0;
	if (iters > 100000) iters = 100000;

	struct guest g;
	guest_init(&g, 1);
	uint64_t khz = 0;
	get_msr(g.vcpu, 0x4b564d13, &khz);
	if (!khz) khz = 2500000;
	/* roots: KA=0x10000 (allocated by guest_init), UA, KB, UB */
	uint64_t ka = g.pml4, ua = pt_alloc(&g), kb = pt_alloc(&g), ub = pt_alloc(&g);
	if (ka != 0x10000 || ua != 0x11000 || kb != 0x12000 || ub != 0x13000) { fprintf(stderr, "unexpected roots\n"); return 1; }
	memcpy(g.mem + CODE_GPA, p8_start, p8_end - p8_start);
	memcpy(g.mem + CODE_GPA + 0x8000, gstubs_start, gstubs_end - gstubs_start);
	uint64_t f = PTE_W | PTE_U;
	pt_map_range(&g, ka, 0, 0, 8 << 20, f);                      /* low identity: user code, stacks, buffers */
	pt_map_range(&g, ka, CODE_VA, CODE_GPA, 0x10000, f);          /* supervisor code (U=1 is required) */
	pt_map_range(&g, ka, CODE_VA + 0x80000, KSTACK_GPA, 0x80000, f);
	gptr(&g, ua)[0] = gptr(&g, ka)[0];                           /* user root: low half only */
	if (far == 3) {   /* pair B shares the lower-level tables of pair A */
		memcpy(g.mem + kb, g.mem + ka, 0x1000);
		memcpy(g.mem + ub, g.mem + ua, 0x1000);
	} else {          /* pair B: its own tables, same mappings */
		pt_map_range(&g, kb, 0, 0, 8 << 20, f);
		pt_map_range(&g, kb, CODE_VA, CODE_GPA, 0x10000, f);
		pt_map_range(&g, kb, CODE_VA + 0x80000, KSTACK_GPA, 0x80000, f);
		gptr(&g, ub)[0] = gptr(&g, kb)[0];
	}
	idt_fill(&g, CODE_VA + 0x8000);
	uint64_t *tss = gptr(&g, 0x3000);
	memset(tss, 0, 0x68);
	*(uint64_t *)((uint8_t *)tss + 4) = CODE_VA + 0xf0000;
	memset(g.mem + VIF_GPA, 0, 0x1000);
	set_long_mode(&g, ka, 0);
	uint64_t user_entry = CODE_GPA + (p8_user_entry - p8_start);   /* low alias of the blob */
	struct kvm_regs r = { .rip = CODE_VA, .rsp = CODE_VA + 0x100000, .rflags = 2, .rdi = iters,
			      .rsi = VIF_GPA | flags, .rdx = mode, .rbx = USTACK_GPA + 0x100000, .r12 = BUF_GPA,
			      .r13 = user_entry, .rbp = far, .r14 = far == 2 ? ka : kb, .r15 = ka, .r8 = priv };
	if (ioctl(g.vcpu, KVM_SET_REGS, &r) < 0) DIE("SET_REGS");
	printf("flags=%#llx iters=%llu ret=%s far=%d tsc_khz=%llu\n", (unsigned long long)flags, (unsigned long long)iters,
	       mode ? "int $0x17 (eretu)" : "int $0x19 (dsiret)", far, (unsigned long long)khz);
	double t0 = now_us();
	int x;
	for (;;) {
		x = run_once(&g, 30);
		if (x == KVM_EXIT_IO && g.run->io.port == 0x99) continue;   /* far=6 doorbell */
		break;
	}
	double t1 = now_us();
	ioctl(g.vcpu, KVM_GET_REGS, &r);
	if (!(x == KVM_EXIT_IO && g.run->io.port == 0x20)) {
		report_exit(&g, x);
		return 1;
	}
	printf("  count=%llu cs: boot=%llx after-enable=%llx user=%llx handler=%llx; KVM_RUN %.1f us total (%.3f us/iter incl. setup)\n",
	       r.rax, r.r8, r.r9, r.r10, r.r11, t1 - t0, (t1 - t0) / (iters ? iters : 1));
	if (iters && r.rax == iters) {
		uint64_t *d = (uint64_t *)(g.mem + BUF_GPA);
		uint64_t *e = (uint64_t *)(g.mem + BUF_GPA + 0x100000);
		uint64_t first = d[0], last = d[iters - 1], sum = 0, over5 = 0;
		for (uint64_t i = 0; i < iters; i++) { sum += d[i]; if (d[i] * 1e3 / khz > 5) over5++; }
		printf("  mean %.3f us, %llu of %llu trips over 5 us\n", (double)sum / iters * 1e3 / khz, (unsigned long long)over5, (unsigned long long)iters);
		qsort(e, iters, 8, cmpu);
		qsort(d, iters, 8, cmpu);
		printf("  first trip %llu cycles (%.2f us), last %llu (%.2f us)\n", (unsigned long long)first, first * 1e3 / khz,
		       (unsigned long long)last, last * 1e3 / khz);
		printf("  entry (user syscall -> handler): p50 %.3f us p99 %.3f us\n", e[iters / 2] * 1e3 / khz, e[iters * 99 / 100] * 1e3 / khz);
		printf("  round trip: min %.3f us p50 %.3f us p99 %.3f us max %.3f us\n", d[0] * 1e3 / khz, d[iters / 2] * 1e3 / khz,
		       d[iters * 99 / 100] * 1e3 / khz, d[iters - 1] * 1e3 / khz);
	}
	printf("  vIF page bytes 0..15:");
	for (int i = 0; i < 16; i++) printf(" %02x", g.mem[VIF_GPA + i]);
	printf("\n");
	return 0;
}
