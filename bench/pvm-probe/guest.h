/* Minimal 64-bit guest builder shared by the probes: guest RAM at GPA 0,
 * 4-level page tables built by the host, a Linux-like GDT, an IDT whose stubs
 * report the vector with `out` to port 0x30, and a blob of guest code. */
#ifndef PVMPROBE_GUEST_H
#define PVMPROBE_GUEST_H
#include "common.h"

#define MEM_SIZE   (64ull << 20)
#define GDT_GPA    0x1000ull
#define IDT_GPA    0x2000ull
#define PT_POOL    0x10000ull      /* page-table pages 0x10000..0xfffff */
#define CODE_GPA   0x100000ull     /* guest code blob, up to 1 MiB */
#define DATA_GPA   0x200000ull     /* scratch data, 2 MiB */
#define KSTACK_GPA 0x400000ull     /* kernel stack top at 0x500000 */
#define USTACK_GPA 0x500000ull     /* user stack top at 0x600000 */

#define PTE_P 1ull
#define PTE_W 2ull
#define PTE_U 4ull

/* Linux x86-64 selector layout (host __USER32_CS=0x23 __USER_DS=0x2b __USER_CS=0x33) */
#define SEL_KCS 0x10
#define SEL_KDS 0x18
#define SEL_UCS32 0x23
#define SEL_UDS 0x2b
#define SEL_UCS 0x33

struct guest {
	int kvm, vm, vcpu;
	uint8_t *mem;
	struct kvm_run *run;
	uint64_t pml4;      /* GPA of the root */
	uint64_t pt_next;
};

static uint64_t *gptr(struct guest *g, uint64_t gpa) { return (uint64_t *)(g->mem + gpa); }

static uint64_t pt_alloc(struct guest *g)
{
	uint64_t p = g->pt_next;
	g->pt_next += 0x1000;
	if (g->pt_next > CODE_GPA) { fprintf(stderr, "pt pool exhausted\n"); exit(1); }
	memset(g->mem + p, 0, 0x1000);
	return p;
}

/* map one 4K page va->gpa in the tree rooted at `root` */
static void pt_map(struct guest *g, uint64_t root, uint64_t va, uint64_t gpa, uint64_t flags)
{
	uint64_t t = root;
	for (int lvl = 3; lvl > 0; lvl--) {
		unsigned idx = (va >> (12 + 9 * lvl)) & 511;
		uint64_t *e = gptr(g, t) + idx;
		if (!(*e & PTE_P)) *e = pt_alloc(g) | PTE_P | PTE_W | PTE_U;
		else *e |= (flags & PTE_U);
		t = *e & 0x000ffffffffff000ull;
	}
	gptr(g, t)[(va >> 12) & 511] = gpa | flags | PTE_P;
}

static void pt_map_range(struct guest *g, uint64_t root, uint64_t va, uint64_t gpa, uint64_t len, uint64_t flags)
{
	for (uint64_t o = 0; o < len; o += 0x1000) pt_map(g, root, va + o, gpa + o, flags);
}

static void on_alarm(int s) { (void)s; }

static void guest_init(struct guest *g, int set_cpuid)
{
	memset(g, 0, sizeof *g);
	g->kvm = kvm_fd_open();
	g->vm = ioctl(g->kvm, KVM_CREATE_VM, 0);
	if (g->vm < 0) DIE("CREATE_VM");
	g->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->mem == MAP_FAILED) DIE("mmap");
	struct kvm_userspace_memory_region r = { .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)g->mem };
	if (ioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) DIE("SET_USER_MEMORY_REGION");
	g->vcpu = ioctl(g->vm, KVM_CREATE_VCPU, 0);
	if (g->vcpu < 0) DIE("CREATE_VCPU");
	int sz = ioctl(g->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	g->run = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu, 0);
	if (g->run == MAP_FAILED) DIE("mmap run");
	if (set_cpuid) {
		struct kvm_cpuid2 *cp = calloc(1, sizeof(*cp) + 256 * sizeof(struct kvm_cpuid_entry2));
		cp->nent = 256;
		if (ioctl(g->kvm, KVM_GET_SUPPORTED_CPUID, cp) < 0) DIE("SUPPORTED_CPUID");
		if (ioctl(g->vcpu, KVM_SET_CPUID2, cp) < 0) DIE("SET_CPUID2");
		free(cp);
	}
	g->pt_next = PT_POOL;
	g->pml4 = pt_alloc(g);

	/* GDT: null, -, KCS(0x10), KDS(0x18), UCS32(0x20), UDS(0x28), UCS(0x30) */
	uint64_t *gdt = gptr(g, GDT_GPA);
	gdt[2] = 0x00af9b000000ffffull;  /* 64-bit code, DPL0 */
	gdt[3] = 0x00cf93000000ffffull;  /* data, DPL0 */
	gdt[4] = 0x00cffb000000ffffull;  /* 32-bit code DPL3 */
	gdt[5] = 0x00cff3000000ffffull;  /* data DPL3 */
	gdt[6] = 0x00affb000000ffffull;  /* 64-bit code DPL3 */

	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
}

/* Fill the IDT: vector v -> stub at `stubs + v*16` (guest VA) */
static void idt_fill(struct guest *g, uint64_t stubs_va)
{
	uint64_t *idt = gptr(g, IDT_GPA);
	for (int v = 0; v < 256; v++) {
		uint64_t off = stubs_va + (uint64_t)(v < 32 ? v : 32) * 16;
		uint64_t lo = (off & 0xffff) | ((uint64_t)SEL_KCS << 16) | (0x8eull << 40) | ((off >> 16 & 0xffff) << 48);
		if (v == 3 || v == 4 || v == 0x80) lo |= 0x60ull << 40;  /* DPL3 */
		idt[2 * v] = lo;
		idt[2 * v + 1] = off >> 32;
	}
}

static void seg(struct kvm_segment *s, uint16_t sel, int code, int dpl, int l)
{
	memset(s, 0, sizeof *s);
	s->selector = sel; s->limit = 0xffffffff; s->present = 1; s->s = 1; s->g = 1; s->dpl = dpl;
	s->type = code ? 0xb : 0x3; s->l = l; s->db = l ? 0 : 1;
}

/* 64-bit supervisor state. cr4 extra bits may be added by the caller. */
static void set_long_mode(struct guest *g, uint64_t cr3, uint64_t cr4_extra)
{
	struct kvm_sregs s;
	if (ioctl(g->vcpu, KVM_GET_SREGS, &s) < 0) DIE("GET_SREGS");
	s.cr0 = 0x80050033;            /* PG WP NE ET MP PE */
	s.cr3 = cr3;
	s.cr4 = 0x20 | 0x200 | 0x400 | cr4_extra; /* PAE OSFXSR OSXMMEXCPT */
	s.efer = 0x500 | 0x1 | 0x800;  /* LME LMA SCE NXE */
	seg(&s.cs, SEL_KCS, 1, 0, 1);
	seg(&s.ss, SEL_KDS, 0, 0, 0);
	seg(&s.ds, 0, 0, 0, 0); s.ds.selector = 0;
	s.es = s.ds; s.fs = s.ds; s.gs = s.ds;
	s.gdt.base = GDT_GPA; s.gdt.limit = 8 * 8 - 1;
	s.idt.base = IDT_GPA; s.idt.limit = 256 * 16 - 1;
	memset(&s.tr, 0, sizeof s.tr);
	s.tr.type = 0xb; s.tr.present = 1; s.tr.limit = 0x67; s.tr.base = 0x3000;
	memset(&s.ldt, 0, sizeof s.ldt); s.ldt.type = 2; s.ldt.present = 1; s.ldt.unusable = 1;
	if (ioctl(g->vcpu, KVM_SET_SREGS, &s) < 0) DIE("SET_SREGS long mode");
}

/* run once with a timeout (seconds); returns exit reason or -errno */
static int run_once(struct guest *g, unsigned timeout_s)
{
	alarm(timeout_s);
	int r = ioctl(g->vcpu, KVM_RUN, 0);
	int e = errno;
	alarm(0);
	if (r < 0) return -e;
	return g->run->exit_reason;
}

static void report_exit(struct guest *g, int r)
{
	struct kvm_regs regs; struct kvm_sregs s;
	if (r < 0) { printf("  KVM_RUN failed: %s\n", strerror(-r)); }
	else {
		printf("  exit %s", exit_name(r));
		if (r == KVM_EXIT_IO) printf(" port=%x dir=%d", g->run->io.port, g->run->io.direction);
		if (r == KVM_EXIT_MMIO) printf(" gpa=%llx w=%d", (unsigned long long)g->run->mmio.phys_addr, g->run->mmio.is_write);
		if (r == KVM_EXIT_INTERNAL_ERROR) {
			printf(" suberror=%u ndata=%u:", g->run->internal.suberror, g->run->internal.ndata);
			for (unsigned i = 0; i < g->run->internal.ndata && i < 16; i++) printf(" %llx", (unsigned long long)g->run->internal.data[i]);
		}
		if (r == KVM_EXIT_FAIL_ENTRY) printf(" reason=%llx", (unsigned long long)g->run->fail_entry.hardware_entry_failure_reason);
		printf("\n");
	}
	ioctl(g->vcpu, KVM_GET_REGS, &regs);
	ioctl(g->vcpu, KVM_GET_SREGS, &s);
	dump_regs(&regs);
	printf("  cs=%x(dpl%d l%d) ss=%x cr0=%llx cr3=%llx cr4=%llx efer=%llx\n", s.cs.selector, s.cs.dpl, s.cs.l, s.ss.selector, s.cr0, s.cr3, s.cr4, s.efer);
}
#endif
