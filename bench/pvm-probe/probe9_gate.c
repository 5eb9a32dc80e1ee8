/* probe9: a far call between two address spaces on kvm_pvm's root pair, with no VM exit.
 * The caller runs in guest user mode on the user root U (caller memory only); the backend is
 * mapped only in the kernel root K and runs in guest supervisor mode (natively, hardware CPL 3).
 * See probe9_guest.S for the gates and the stub, README "probe9" for the results.
 *
 *   usage: probe9_gate MODE [iters] [sub] [flags]
 *     MODE null   user `syscall` -> kernel -> `int $0x19` (no gate, baseline)
 *          sys    (a) `syscall` gate -> stub -> backend b_add(buf, i, &out) -> back
 *          pf     (b) `call` to an address unmapped in U -> #PF -> stub -> b_add -> back
 *          local  b_add-like function called in user mode (scale)
 *          lock   two VMs sharing a memfd page, one vCPU thread each (pinned to CPU 0 and 1),
 *                 each calls the `syscall` gate to a backend that takes an xchg spin lock in the
 *                 shared page around a non-atomic increment; sub 1 = with lock, 0 = without
 *          priv   after the caller's calls, the backend runs privileged op `sub` (1 rdmsr LSTAR,
 *                 2 mov cr3, 3 out to the VMM, 4 HC_SET_CR3 to a root the backend built in its
 *                 own memory -> read a page K does not map -> back, 5 wrmsr LSTAR to backend code
 *                 (the caller's next syscall lands there), 6 cli/sti, 7 HC_FLUSH_TLB,
 *                 8 write the kernel's text)
 *          iso    after the calls, the caller tries forbidden access `sub` (1 read backend data,
 *                 2 call backend code directly, 3 call gate+8, 4 call one past the last gate,
 *                 5 write the lock page, 6 read kernel text, 7 jmp to the #PF gate with RSP in
 *                 backend memory, 8 hypercall SET_CR3, 9 wrmsr LSTAR, 10 mov cr3)
 *          bp     a gate page mapped read-only in U with `int3` at each 64-byte entry -> #BP -> stub
 *          ud     the same with `ud2` -> #UD -> stub
 *          nx     the `ud2` page mapped NX in U -> #PF (present, fetch) -> stub
 *   flags: OR'd into MSR 0x4b564d10 (default 0x7f: needs the CR2 cell).
 * Timing: guest rdtsc around each call in user mode; exits: the vCPU's KVM binary stats "exits". */
#include "guest.h"
#include <pthread.h>
#include <sched.h>

extern const uint8_t gstubs_start[], gstubs_end[];
extern const uint8_t p9k_start[], p9k_end[], p9k_pf_entry[], p9k_bp_entry[], p9k_ud_entry[];
extern const uint8_t p9u_start[], p9u_end[];
extern const uint8_t p9b_start[], p9b_end[], p9b_vars[];

#define KVA        0xffffd90000000000ull
#define UCODE      0x600000ull
#define UDATA      0x800000ull
#define UDELTA     0x810000ull
#define BVA        0x10000000000ull
#define BCODE_GPA  0xc00000ull
#define BDATA_GPA  0xd00000ull
#define BSTK_GPA   0xe00000ull
#define SECRET_GPA 0x2000000ull
#define SHARED_GPA 0x4000000ull
#define VIF_GPA    DATA_GPA
#define SECRET     0x5ec7e75ec7e7ull

enum { M_NULL, M_SYS, M_PF, M_LOCAL, M_LOCK, M_PRIV, M_ISO, M_BP, M_UD, M_NX };
#define GATE_TRAP 0x700000ull
#define GATE_NX 0x710000ull
#define GPAGE_GPA 0x610000ull

struct vm {
	struct guest g;
	int id, statfd, cpu;
	uint64_t mode, sub, iters, flags;
	uint64_t exits0, exits1, khz;
	int exit, port99;
	double t0, t1;
	struct kvm_regs regs;
};

static uint8_t *shared;   /* the memfd page, mapped in the host too */

static int stat_find(int fd, const char *name, uint64_t *out)
{
	struct kvm_stats_header h;
	if (pread(fd, &h, sizeof h, 0) != sizeof h) return -1;
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	char *d = malloc(dsz * h.num_desc);
	if (pread(fd, d, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc)) { free(d); return -1; }
	for (unsigned i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *e = (struct kvm_stats_desc *)(d + i * dsz);
		if (!strcmp(e->name, name)) {
			int r = pread(fd, out, 8, h.data_offset + e->offset) == 8 ? 0 : -1;
			free(d);
			return r;
		}
	}
	free(d);
	return -1;
}

/* all counters of the vCPU's stats fd (names into *names, values into vals); returns the count */
static int stat_all(int fd, char names[][48], uint64_t *vals, int max)
{
	struct kvm_stats_header h;
	if (fd < 0 || pread(fd, &h, sizeof h, 0) != sizeof h) return 0;
	size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	char *d = malloc(dsz * h.num_desc);
	if (pread(fd, d, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc)) { free(d); return 0; }
	int n = 0;
	for (unsigned i = 0; i < h.num_desc && n < max; i++) {
		struct kvm_stats_desc *e = (struct kvm_stats_desc *)(d + i * dsz);
		if (e->size != 1) continue;
		snprintf(names[n], 48, "%s", e->name);
		if (pread(fd, &vals[n], 8, h.data_offset + e->offset) != 8) vals[n] = 0;
		n++;
	}
	free(d);
	return n;
}

static char stn[128][48];
static uint64_t st0[128], st1[128];
static int stn_n;

static uint64_t exits_now(struct vm *v)
{
	uint64_t x = 0;
	if (v->statfd < 0 || stat_find(v->statfd, "exits", &x) < 0) return ~0ull;
	return x;
}

static void vm_build(struct vm *v, int shfd)
{
	struct guest *g = &v->g;
	guest_init(g, 1);
	v->khz = 0;
	get_msr(g->vcpu, 0x4b564d13, &v->khz);
	if (!v->khz) v->khz = 2500000;
	struct kvm_userspace_memory_region r = { .slot = 1, .guest_phys_addr = SHARED_GPA, .memory_size = 0x1000,
						 .userspace_addr = (uint64_t)shared };
	if (ioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) DIE("shared memslot");
	(void)shfd;
	uint64_t k = g->pml4, u = pt_alloc(g);
	if (k != 0x10000 || u != 0x11000) { fprintf(stderr, "unexpected roots\n"); exit(1); }
	if (p9k_end - p9k_start > 0x8000) { fprintf(stderr, "kernel blob too big\n"); exit(1); }
	memcpy(g->mem + CODE_GPA, p9k_start, p9k_end - p9k_start);
	memcpy(g->mem + CODE_GPA + 0x8000, gstubs_start, gstubs_end - gstubs_start);
	memcpy(g->mem + UCODE, p9u_start, p9u_end - p9u_start);
	memcpy(g->mem + BCODE_GPA, p9b_start, p9b_end - p9b_start);
	uint64_t f = PTE_W | PTE_U;
	/* PML4 slot 0: caller memory only (shared by K and U) */
	pt_map_range(g, k, UCODE, UCODE, 0x10000, f);
	pt_map_range(g, k, UDATA, UDATA, 0x200000, f);
	pt_map_range(g, k, 0xa00000, 0xa00000, 0x100000, f);          /* caller stack, top 0xb00000 */
	gptr(g, u)[0] = gptr(g, k)[0];
	/* kernel (upper half, K only): code + IDT stubs, RSP0 stack, vIF page, GDT/IDT/TSS */
	pt_map_range(g, k, KVA, CODE_GPA, 0x10000, f);
	pt_map_range(g, k, KVA + 0x80000, KSTACK_GPA, 0x80000, f);
	pt_map_range(g, k, KVA + 0x200000, VIF_GPA, 0x1000, f);
	pt_map_range(g, k, KVA + 0x300000, 0, 0x4000, f);
	/* backend (PML4 slot 2, K only): code, data (FS base, root scratch), stack, shared lock page */
	pt_map_range(g, k, BVA, BCODE_GPA, 0x10000, f);
	pt_map_range(g, k, BVA + 0x100000, BDATA_GPA, 0x20000, f);
	pt_map_range(g, k, BVA + 0x200000, BSTK_GPA, 0x10000, f);
	pt_map_range(g, k, BVA + 0x300000, SHARED_GPA, 0x1000, f);
	*gptr(g, SECRET_GPA) = SECRET;                                   /* mapped in no root */
	gptr(g, BDATA_GPA)[0] = BVA + 0x100000;                           /* backend TLS: self, 1000 */
	gptr(g, BDATA_GPA)[1] = 1000;
	idt_fill(g, KVA + 0x8000);
	uint64_t *idt = gptr(g, IDT_GPA);
	struct { int vec; const uint8_t *sym; int dpl; } hv[] = { { 14, p9k_pf_entry, 0 }, { 3, p9k_bp_entry, 3 }, { 6, p9k_ud_entry, 0 } };
	for (int i = 0; i < 3; i++) {
		uint64_t a = KVA + (hv[i].sym - p9k_start);
		idt[2 * hv[i].vec] = (a & 0xffff) | ((uint64_t)SEL_KCS << 16) | ((0x8eull | hv[i].dpl << 5) << 40) | ((a >> 16 & 0xffff) << 48);
		idt[2 * hv[i].vec + 1] = a >> 32;
	}
	/* gate page in caller memory: int3 (bp) or ud2 (ud/others) at each 64-byte entry; read-only in U,
	 * mapped executable at GATE_TRAP and NX at GATE_NX */
	memset(g->mem + GPAGE_GPA, 0xcc, 0x1000);
	if (v->mode != M_BP)
		for (int i = 0; i < 0x1000; i += 64) { g->mem[GPAGE_GPA + i] = 0x0f; g->mem[GPAGE_GPA + i + 1] = 0x0b; }
	pt_map(g, k, GATE_TRAP, GPAGE_GPA, PTE_U);
	pt_map(g, k, GATE_NX, GPAGE_GPA, PTE_U | (1ull << 63));
	uint8_t *tss = g->mem + 0x3000;
	memset(tss, 0, 0x68);
	*(uint64_t *)(tss + 4) = KVA + 0x100000;
	memset(g->mem + VIF_GPA, 0, 0x1000);
	set_long_mode(g, k, 0x10000);                                     /* + FSGSBASE */
	struct kvm_sregs s;
	if (ioctl(g->vcpu, KVM_GET_SREGS, &s) < 0) DIE("GET_SREGS");
	s.gdt.base = KVA + 0x300000 + GDT_GPA;
	s.idt.base = KVA + 0x300000 + IDT_GPA;
	s.tr.base = KVA + 0x303000;
	if (ioctl(g->vcpu, KVM_SET_SREGS, &s) < 0) DIE("SET_SREGS");
	struct kvm_regs rg = { .rip = KVA, .rsp = KVA + 0x100000, .rflags = 2, .rsi = VIF_GPA | v->flags,
			       .r12 = v->iters, .r13 = v->mode, .r14 = v->sub, .r15 = v->id };
	if (ioctl(g->vcpu, KVM_SET_REGS, &rg) < 0) DIE("SET_REGS");
	v->statfd = ioctl(g->vcpu, KVM_GET_STATS_FD, 0);
}

static int run_vm(struct vm *v, unsigned timeout)
{
	v->exits0 = exits_now(v);
	if (getenv("P9_STATS")) stn_n = stat_all(v->statfd, stn, st0, 128);
	v->t0 = now_us();
	int x;
	for (;;) {
		if (timeout) x = run_once(&v->g, timeout);
		else { int r = ioctl(v->g.vcpu, KVM_RUN, 0); x = r < 0 ? -errno : (int)v->g.run->exit_reason; }
		if (x == KVM_EXIT_IO && v->g.run->io.port == 0x99) { v->port99++; continue; }
		break;
	}
	v->t1 = now_us();
	v->exits1 = exits_now(v);
	if (getenv("P9_STATS")) {
		stat_all(v->statfd, stn, st1, 128);
		printf("  vCPU stats deltas:");
		for (int i = 0; i < stn_n; i++) if (st1[i] != st0[i]) printf(" %s=%lld", stn[i], (long long)(st1[i] - st0[i]));
		printf("\n");
	}
	ioctl(v->g.vcpu, KVM_GET_REGS, &v->regs);
	v->exit = x;
	return x;
}

static void *thr(void *p)
{
	struct vm *v = p;
	cpu_set_t cs;
	CPU_ZERO(&cs);
	CPU_SET(v->cpu, &cs);
	pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
	run_vm(v, 0);
	return NULL;
}

static int cmpu(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static const char *vecname(int v)
{
	switch (v) { case 6: return "#UD"; case 13: return "#GP"; case 14: return "#PF"; }
	return "?";
}

/* prints the outcome; returns 1 if the run ended with the finish syscall */
static int report(struct vm *v, const char *tag)
{
	struct guest *g = &v->g;
	uint64_t *ud = gptr(g, UDATA);
	uint64_t bcalls = *(uint64_t *)(g->mem + BCODE_GPA + (p9b_vars - p9b_start));
	uint64_t bspins = *(uint64_t *)(g->mem + BCODE_GPA + (p9b_vars - p9b_start) + 8);
	uint64_t bhij = *(uint64_t *)(g->mem + BCODE_GPA + (p9b_vars - p9b_start) + 16);
	uint64_t ex = (v->exits0 != ~0ull && v->exits1 != ~0ull) ? v->exits1 - v->exits0 : ~0ull;
	printf("%s: ", tag);
	int ok = 0;
	if (v->exit == KVM_EXIT_IO && g->run->io.port == 0x20) { printf("finished"); ok = 1; }
	else if (v->exit == KVM_EXIT_IO && g->run->io.port == 0x30) {
		int vec = v->regs.rax & 0xff;
		printf("caller faulted: vector %d %s, error code %#llx, rip %#llx, cs %#llx, cr2 cell %#llx", vec, vecname(vec),
		       (unsigned long long)v->regs.rbx, (unsigned long long)v->regs.rcx, (unsigned long long)(v->regs.rdi & 0xffff),
		       (unsigned long long)gptr(g, VIF_GPA)[1]);
	} else if (v->exit == KVM_EXIT_IO && g->run->io.port == 0x23)
		printf("gate stub refused the event: vector %d %s at user rip %#llx", (int)v->regs.rbx, vecname(v->regs.rbx), (unsigned long long)v->regs.rax);
	else if (v->exit == KVM_EXIT_IO && g->run->io.port == 0x22) printf("unknown system call %#llx", (unsigned long long)v->regs.rax);
	else { report_exit(g, v->exit); }
	printf("; backend calls %llu, spins %llu, hijacked syscalls %llu, port-0x99 exits %d, KVM exits %lld, KVM_RUN %.0f us\n",
	       (unsigned long long)bcalls, (unsigned long long)bspins, (unsigned long long)bhij, v->port99, (long long)ex, v->t1 - v->t0);
	if (v->mode == M_ISO) printf("  forbidden access completed without a fault: %s\n", ud[7] ? "YES (NOT ISOLATED)" : "no");
	if (v->mode == M_PRIV)
		printf("  backend op result %#llx, %llu cycles (%.2f us); caller's null syscall afterwards returned %#llx\n",
		       (unsigned long long)ud[3], (unsigned long long)ud[5], ud[5] * 1e3 / v->khz, (unsigned long long)ud[6]);
	if (ok && v->iters) {
		uint64_t n = v->iters, *d = gptr(g, UDELTA), *d2 = gptr(g, 0x8e0000), sum = 0, over5 = 0;
		if (v->mode != M_NULL && v->mode != M_LOCAL) {
			for (uint64_t i = 0; i < n; i++) d2[i] = d2[i] > d[i] ? 0 : d[i] - d2[i];   /* way back */
			qsort(d2, n, 8, cmpu);
		}
		for (uint64_t i = 0; i < n; i++) { sum += d[i]; if (d[i] * 1e3 / v->khz > 5) over5++; }
		qsort(d, n, 8, cmpu);
		double k = 1e3 / v->khz;
		printf("  %llu calls: min %.3f p50 %.3f p99 %.3f max %.1f mean %.3f us; %llu over 5 us; result mismatches %llu; "
		       "exits/call %.5f; wall/call %.3f us\n",
		       (unsigned long long)n, d[0] * k, d[n / 2] * k, d[n * 99 / 100] * k, d[n - 1] * k, (double)sum / n * k,
		       (unsigned long long)over5, (unsigned long long)ud[2], ex == ~0ull ? -1.0 : (double)ex / n, (v->t1 - v->t0) / n);
		if (v->mode != M_NULL && v->mode != M_LOCAL)
			printf("  of which the way back (stub after the backend -> int $0x19 -> caller): p50 %.3f p99 %.3f us\n",
			       d2[n / 2] * k, d2[n * 99 / 100] * k);
	}
	return ok;
}

int main(int argc, char **argv)
{
	static const char *names[] = { "null", "sys", "pf", "local", "lock", "priv", "iso", "bp", "ud", "nx" };
	if (argc < 2) { fprintf(stderr, "usage: %s null|sys|pf|local|lock|priv|iso|bp|ud|nx [iters] [sub] [flags]\n", argv[0]); return 2; }
	int mode = -1;
	for (int i = 0; i < 10; i++) if (!strcmp(argv[1], names[i])) mode = i;
	if (mode < 0) { fprintf(stderr, "bad mode\n"); return 2; }
	uint64_t iters = argc > 2 ? strtoull(argv[2], 0, 0) : 100000;
	uint64_t sub = argc > 3 ? strtoull(argv[3], 0, 0) : (mode == M_LOCK);
	uint64_t flags = argc > 4 ? strtoull(argv[4], 0, 0) : 0x7f;
	if (iters > 100000) iters = 100000;

	int shfd = memfd_create("p9shared", 0);
	if (shfd < 0 || ftruncate(shfd, 0x1000) < 0) DIE("memfd");
	shared = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, shfd, 0);
	if (shared == MAP_FAILED) DIE("mmap memfd");
	memset(shared, 0, 0x1000);

	int nvm = mode == M_LOCK ? 2 : 1;
	static struct vm vms[2];
	for (int i = 0; i < nvm; i++) {
		struct vm *v = &vms[i];
		v->id = i; v->cpu = i; v->mode = mode; v->sub = sub; v->iters = iters; v->flags = flags;
		vm_build(v, shfd);
	}
	printf("mode=%s iters=%llu sub=%llu flags=%#llx tsc_khz=%llu stats_fd=%s\n", names[mode], (unsigned long long)iters,
	       (unsigned long long)sub, (unsigned long long)flags, (unsigned long long)vms[0].khz, vms[0].statfd >= 0 ? "yes" : "no");
	if (nvm == 1) {
		run_vm(&vms[0], 60);
		report(&vms[0], "vm0");
	} else {
		pthread_t t[2];
		for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, thr, &vms[i]);
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 60;
		for (int i = 0; i < 2; i++)
			if (pthread_timedjoin_np(t[i], NULL, &dl)) {
				fprintf(stderr, "timeout: kicking the vCPU threads\n");
				for (int j = 0; j < 2; j++) pthread_kill(t[j], SIGALRM);
				pthread_join(t[i], NULL);
			}
		report(&vms[0], "vm0 (cpu 0)");
		report(&vms[1], "vm1 (cpu 1)");
		uint64_t cnt = *(uint64_t *)(shared + 8);
		double ov0 = vms[0].t0 > vms[1].t0 ? vms[0].t0 : vms[1].t0, ov1 = vms[0].t1 < vms[1].t1 ? vms[0].t1 : vms[1].t1;
		printf("shared counter %llu, expected %llu (%s); lock word %u; barrier %llu; runs overlapped %.0f us of %.0f / %.0f\n",
		       (unsigned long long)cnt, (unsigned long long)(2 * iters), cnt == 2 * iters ? "no lost updates" : "LOST UPDATES",
		       *(uint32_t *)shared, (unsigned long long)*(uint64_t *)(shared + 16), ov1 - ov0, vms[0].t1 - vms[0].t0,
		       vms[1].t1 - vms[1].t0);
	}
	return 0;
}
