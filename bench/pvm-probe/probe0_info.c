/* probe0: what does this kvm_pvm expose?  MSR index lists, PVM MSR defaults,
 * reset SREGS, PVM CPUID leaves.  Runs no guest code. */
#include "common.h"

int main(void)
{
	int kvm = kvm_fd_open();
	printf("sizeof kvm_cpuid2=%zu kvm_cpuid_entry2=%zu kvm_msrs=%zu kvm_msr_entry=%zu kvm_sregs=%zu kvm_regs=%zu kvm_run=%zu\n",
	       sizeof(struct kvm_cpuid2), sizeof(struct kvm_cpuid_entry2), sizeof(struct kvm_msrs),
	       sizeof(struct kvm_msr_entry), sizeof(struct kvm_sregs), sizeof(struct kvm_regs), sizeof(struct kvm_run));
	printf("API %d\n", ioctl(kvm, KVM_GET_API_VERSION, 0));
	int caps[] = { KVM_CAP_SYNC_REGS, KVM_CAP_X86_USER_SPACE_MSR, KVM_CAP_X86_MSR_FILTER, KVM_CAP_EXIT_HYPERCALL,
		       KVM_CAP_SET_GUEST_DEBUG, KVM_CAP_VM_TYPES, KVM_CAP_ENFORCE_PV_FEATURE_CPUID };
	const char *capn[] = { "SYNC_REGS", "X86_USER_SPACE_MSR", "X86_MSR_FILTER", "EXIT_HYPERCALL", "SET_GUEST_DEBUG", "VM_TYPES", "ENFORCE_PV_FEATURE_CPUID" };
	for (unsigned i = 0; i < sizeof caps / sizeof caps[0]; i++)
		printf("cap %s = %d\n", capn[i], ioctl(kvm, KVM_CHECK_EXTENSION, caps[i]));

	struct { struct kvm_msr_list h; uint32_t idx[1024]; } ml;
	ml.h.nmsrs = 1024;
	if (ioctl(kvm, KVM_GET_MSR_INDEX_LIST, &ml) < 0) DIE("MSR_INDEX_LIST");
	printf("MSR index list: %u entries; PVM/KVM-range ones:", ml.h.nmsrs);
	for (unsigned i = 0; i < ml.h.nmsrs; i++)
		if ((ml.idx[i] & 0xffffff00) == 0x4b564d00) printf(" %x", ml.idx[i]);
	printf("\n");

	struct kvm_cpuid2 *cp = calloc(1, sizeof(*cp) + 256 * sizeof(struct kvm_cpuid_entry2));
	cp->nent = 256;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cp) < 0) DIE("SUPPORTED_CPUID");
	for (unsigned i = 0; i < cp->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cp->entries[i];
		if (e->function >= 0x40000000 && e->function < 0x40000100) {
			char sig[13] = {0};
			memcpy(sig, &e->ebx, 4); memcpy(sig + 4, &e->ecx, 4); memcpy(sig + 8, &e->edx, 4);
			printf("cpuid %08x.%x: eax=%08x ebx=%08x ecx=%08x edx=%08x '%s'\n", e->function, e->index,
			       e->eax, e->ebx, e->ecx, e->edx, sig);
		}
		if (e->function == 1 || (e->function == 7 && e->index == 0) || e->function == 0x80000001)
			printf("cpuid %08x.%x: eax=%08x ebx=%08x ecx=%08x edx=%08x\n", e->function, e->index, e->eax, e->ebx, e->ecx, e->edx);
	}

	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) DIE("CREATE_VM");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) DIE("CREATE_VCPU");
	struct kvm_sregs s;
	if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0) DIE("GET_SREGS");
	printf("reset sregs:\n");
	dump_sregs(&s);
	struct kvm_regs r;
	ioctl(vcpu, KVM_GET_REGS, &r);
	dump_regs(&r);
	for (uint32_t idx = 0x4b564df0; idx <= 0x4b564dff; idx++) {
		uint64_t v = 0;
		int rr = get_msr(vcpu, idx, &v);
		printf("MSR %x: %s %llx\n", idx, rr == 1 ? "ok" : "FAIL", (unsigned long long)v);
	}
	uint32_t std[] = { MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_SYSCALL_MASK, MSR_KERNEL_GS_BASE, 0x4b564d00, 0x4b564d01 };
	for (unsigned i = 0; i < sizeof std / 4; i++) {
		uint64_t v = 0;
		int rr = get_msr(vcpu, std[i], &v);
		printf("MSR %x: %s %llx\n", std[i], rr == 1 ? "ok" : "FAIL", (unsigned long long)v);
	}
	return 0;
}
