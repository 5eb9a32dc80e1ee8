/* probe3: does emulated ring-0 code ever run natively?  Runs the same tiny
 * ring-0 loop (dec/jnz) at different linear addresses (low half, several PML4
 * slots of the upper half) and with different CR4/EFER/CPUID variants, timing
 * the KVM_RUN.  Emulated: ~2 us per instruction; native: ~1 ns. */
#include "guest.h"

extern const uint8_t gstubs_start[], gstubs_end[], p2_start[], p2_end[];

static uint64_t g_rflags = 2;
static double run_loop_at(uint64_t code_va, uint64_t iters, uint64_t cr4x, int *exitr, uint64_t *rip_out)
{
	struct guest g;
	guest_init(&g, 1);
	memcpy(g.mem + CODE_GPA, p2_start, p2_end - p2_start);
	memcpy(g.mem + CODE_GPA + 0x8000, gstubs_start, gstubs_end - gstubs_start);
	pt_map_range(&g, g.pml4, 0, 0, 8 << 20, PTE_W);
	pt_map_range(&g, g.pml4, code_va, CODE_GPA, 0x10000, PTE_W);
	idt_fill(&g, code_va + 0x8000);
	set_long_mode(&g, g.pml4, cr4x);
	struct kvm_regs r = { .rip = code_va, .rsp = KSTACK_GPA + 0x100000, .rflags = g_rflags, .rdi = 4, .rsi = iters };
	if (ioctl(g.vcpu, KVM_SET_REGS, &r) < 0) DIE("SET_REGS");
	double t0 = now_us();
	int x = run_once(&g, 10);
	double t1 = now_us();
	*exitr = x;
	ioctl(g.vcpu, KVM_GET_REGS, &r);
	*rip_out = r.rip;
	close(g.vcpu); close(g.vm); close(g.kvm); munmap(g.mem, MEM_SIZE);
	return t1 - t0;
}

int main(int argc, char **argv)
{
	if (argc > 1) g_rflags = strtoull(argv[1], 0, 0);
	printf("initial rflags=%llx\n", (unsigned long long)g_rflags);
	uint64_t vas[] = {
		0x100000ull,                 /* low half */
		0x00007f0000000000ull,       /* top of low half */
		0xffff800000000000ull,       /* PML4 256 */
		0xffff888000000000ull,       /* PML4 273 (Linux direct map) */
		0xffffc90000000000ull,       /* PML4 402 (vmalloc) */
		0xffffd90000000000ull,       /* PML4 434 */
		0xffffe80000000000ull,       /* PML4 464 */
		0xfffff00000000000ull,       /* PML4 480 */
		0xfffffe0000000000ull,       /* PML4 508 */
		0xffffff0000000000ull,       /* PML4 510 */
		0xffffffff80000000ull,       /* PML4 511, top 2G */
	};
	uint64_t iters = 2000;
	for (unsigned i = 0; i < sizeof vas / sizeof vas[0]; i++) {
		int x; uint64_t rip;
		double us = run_loop_at(vas[i], iters, 0, &x, &rip);
		printf("va %016llx (pml4 %3llu): %d iters in %9.1f us = %7.3f us/iter  exit=%s rip=%llx\n",
		       (unsigned long long)vas[i], (unsigned long long)((vas[i] >> 39) & 511), (int)iters, us, us / iters,
		       x < 0 ? strerror(-x) : exit_name(x), (unsigned long long)rip);
	}
	/* CR4 variants at a low and an upper address */
	struct { uint64_t cr4; const char *n; } v[] = {
		{ 0x80, "PGE" }, { 0x10000, "FSGSBASE" }, { 0x100000, "SMEP" }, { 0x40000, "OSXSAVE" }, { 0x800, "UMIP" },
	};
	for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) {
		int x; uint64_t rip;
		double us = run_loop_at(0xffffd90000000000ull, iters, v[i].cr4, &x, &rip);
		printf("upper va, CR4+%s: %.3f us/iter exit=%s rip=%llx\n", v[i].n, us / iters, x < 0 ? strerror(-x) : exit_name(x), (unsigned long long)rip);
	}
	return 0;
}
