/* probe4: scan the KVM paravirt MSR block 0x4b564d00-0x4b564dff with
 * host-initiated KVM_GET_MSRS / KVM_SET_MSRS (fresh vCPU per MSR) to find
 * MSRs this kvm_pvm implements but does not list in KVM_GET_MSR_INDEX_LIST. */
#include "common.h"

int main(void)
{
	int kvm = kvm_fd_open();
	for (uint32_t m = 0x4b564d00; m <= 0x4b564dff; m++) {
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
		if (vm < 0 || vcpu < 0) DIE("create");
		uint64_t v = 0, v2 = 0;
		int g = get_msr(vcpu, m, &v);
		int s0 = set_msr(vcpu, m, v);
		int s1 = set_msr(vcpu, m, 1);
		int g2 = get_msr(vcpu, m, &v2);
		int s2 = set_msr(vcpu, m, 0x1000);
		uint64_t v3 = 0; int g3 = get_msr(vcpu, m, &v3);
		if (g == 1 || s0 == 1 || s1 == 1 || s2 == 1)
			printf("MSR %x: get=%d (%llx) set(same)=%d set(1)=%d -> get=%d (%llx)  set(0x1000)=%d -> get=%d (%llx)\n", m, g,
			       (unsigned long long)v, s0, s1, g2, (unsigned long long)v2, s2, g3, (unsigned long long)v3);
		close(vcpu); close(vm);
	}
	return 0;
}
