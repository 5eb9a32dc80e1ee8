/* probe1: can the VMM reach the PVM MSRs (0x4b564df0..) through KVM_GET/SET_MSRS?
 * Tries: fresh vCPU; after KVM_SET_CPUID2 (supported set, and with an added
 * 0x40000002 "PVM" leaf); after putting the vCPU in 64-bit long mode via SREGS. */
#include "common.h"

static void try_msrs(int vcpu, const char *when)
{
	printf("[%s]\n", when);
	for (uint32_t idx = 0x4b564df0; idx <= 0x4b564df7; idx++) {
		uint64_t v = 0;
		int g = get_msr(vcpu, idx, &v);
		int s = set_msr(vcpu, idx, idx == MSR_PVM_LINEAR_ADDRESS_RANGE ? v : 0);
		printf("  MSR %x: get=%d val=%llx set(same/0)=%d\n", idx, g, (unsigned long long)v, s);
	}
}

int main(void)
{
	int kvm = kvm_fd_open();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vm < 0 || vcpu < 0) DIE("create");
	try_msrs(vcpu, "fresh");

	struct kvm_cpuid2 *cp = calloc(1, sizeof(*cp) + 256 * sizeof(struct kvm_cpuid_entry2));
	cp->nent = 250;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cp) < 0) DIE("SUPPORTED_CPUID");
	if (ioctl(vcpu, KVM_SET_CPUID2, cp) < 0) DIE("SET_CPUID2");
	try_msrs(vcpu, "after SET_CPUID2(supported)");

	/* add a PVM vendor leaf like the spec's 0x40000002 */
	unsigned n = cp->nent;
	for (unsigned i = 0; i < n; i++)
		if (cp->entries[i].function == 0x40000000) cp->entries[i].eax = 0x40000002;
	struct kvm_cpuid_entry2 *e = &cp->entries[n];
	memset(e, 0, sizeof *e);
	e->function = 0x40000002;
	e->ebx = 0x4d5650;
	cp->nent = n + 1;
	int r = ioctl(vcpu, KVM_SET_CPUID2, cp);
	printf("SET_CPUID2 with PVM leaf: %d errno=%d\n", r, r ? errno : 0);
	try_msrs(vcpu, "after SET_CPUID2(+PVM leaf)");

	struct kvm_sregs s;
	ioctl(vcpu, KVM_GET_SREGS, &s);
	s.cr0 = 0x80050033; s.cr4 = 0x20 | 0x10000; s.efer = 0xd01; s.cr3 = 0x1000;
	struct kvm_segment cs = { .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0xb, .present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment ds = { .base = 0, .limit = 0xffffffff, .selector = 0x18, .type = 0x3, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
	s.cs = cs; s.ss = ds; s.ds = ds; s.es = ds; s.fs = ds; s.gs = ds;
	r = ioctl(vcpu, KVM_SET_SREGS, &s);
	printf("SET_SREGS long mode ring0: %d errno=%d\n", r, r ? errno : 0);
	try_msrs(vcpu, "after long-mode SREGS");
	return 0;
}
