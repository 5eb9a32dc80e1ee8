/* Shared helpers for the PVM probes: plain C, <linux/kvm.h> only. */
#ifndef PVMPROBE_COMMON_H
#define PVMPROBE_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif

/* PVM paravirtual MSRs (numbers as used by the public PVM spec / Nanos). */
#define MSR_PVM_LINEAR_ADDRESS_RANGE 0x4b564df0
#define MSR_PVM_VCPU_STRUCT          0x4b564df1
#define MSR_PVM_SUPERVISOR_RSP       0x4b564df2
#define MSR_PVM_SUPERVISOR_REDZONE   0x4b564df3
#define MSR_PVM_EVENT_ENTRY          0x4b564df4
#define MSR_PVM_RETU_RIP             0x4b564df5
#define MSR_PVM_RETS_RIP             0x4b564df6
#define MSR_PVM_SWITCH_CR3           0x4b564df7

#define MSR_EFER           0xc0000080
#define MSR_STAR           0xc0000081
#define MSR_LSTAR          0xc0000082
#define MSR_CSTAR          0xc0000083
#define MSR_SYSCALL_MASK   0xc0000084
#define MSR_FS_BASE        0xc0000100
#define MSR_GS_BASE        0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno)); exit(1); } while (0)

static inline double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int kvm_fd_open(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) DIE("open /dev/kvm");
	return fd;
}

/* Read one MSR; returns 1 on success. */
static int get_msr(int vcpu, uint32_t idx, uint64_t *val)
{
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } m;
	memset(&m, 0, sizeof m);
	m.h.nmsrs = 1;
	m.e[0].index = idx;
	int r = ioctl(vcpu, KVM_GET_MSRS, &m);
	if (r == 1) *val = m.e[0].data;
	return r;
}

static int set_msr(int vcpu, uint32_t idx, uint64_t val)
{
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } m;
	memset(&m, 0, sizeof m);
	m.h.nmsrs = 1;
	m.e[0].index = idx;
	m.e[0].data = val;
	return ioctl(vcpu, KVM_SET_MSRS, &m);
}

static const char *exit_name(int r)
{
	static char buf[32];
	switch (r) {
	case KVM_EXIT_IO: return "IO";
	case KVM_EXIT_MMIO: return "MMIO";
	case KVM_EXIT_HLT: return "HLT";
	case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_EXCEPTION: return "EXCEPTION";
	case KVM_EXIT_DEBUG: return "DEBUG";
	case KVM_EXIT_INTR: return "INTR";
	case KVM_EXIT_HYPERCALL: return "HYPERCALL";
	case KVM_EXIT_SYSTEM_EVENT: return "SYSTEM_EVENT";
	}
	snprintf(buf, sizeof buf, "exit%d", r);
	return buf;
}

static void print_seg(const char *n, struct kvm_segment *s)
{
	printf("  %-3s sel=%04x base=%llx lim=%x type=%x p=%d dpl=%d db=%d s=%d l=%d g=%d unusable=%d\n",
	       n, s->selector, (unsigned long long)s->base, s->limit, s->type, s->present, s->dpl, s->db,
	       s->s, s->l, s->g, s->unusable);
}

static void dump_sregs(struct kvm_sregs *s)
{
	print_seg("cs", &s->cs); print_seg("ss", &s->ss); print_seg("ds", &s->ds);
	print_seg("es", &s->es); print_seg("fs", &s->fs); print_seg("gs", &s->gs);
	print_seg("tr", &s->tr); print_seg("ldt", &s->ldt);
	printf("  cr0=%llx cr2=%llx cr3=%llx cr4=%llx efer=%llx apic_base=%llx gdt=%llx/%x idt=%llx/%x\n",
	       s->cr0, s->cr2, s->cr3, s->cr4, s->efer, s->apic_base, s->gdt.base, s->gdt.limit,
	       s->idt.base, s->idt.limit);
}

static void dump_regs(struct kvm_regs *r)
{
	printf("  rip=%llx rsp=%llx rflags=%llx rax=%llx rbx=%llx rcx=%llx rdx=%llx\n"
	       "  rsi=%llx rdi=%llx rbp=%llx r8=%llx r9=%llx r10=%llx r11=%llx r12=%llx r13=%llx r14=%llx r15=%llx\n",
	       r->rip, r->rsp, r->rflags, r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp,
	       r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15);
}
#endif
