#include "kvm_abi.h"

#include <linux/kvm.h>

const unsigned long farcall_ioc_get_supported_cpuid = KVM_GET_SUPPORTED_CPUID;
const unsigned long farcall_ioc_set_cpuid2 = KVM_SET_CPUID2;
const unsigned long farcall_ioc_set_msrs = KVM_SET_MSRS;
const unsigned long farcall_ioc_get_msrs = KVM_GET_MSRS;
const unsigned long farcall_ioc_get_xsave = KVM_GET_XSAVE;
const unsigned long farcall_ioc_set_xsave = KVM_SET_XSAVE;
const unsigned long farcall_sizeof_kvm_xsave = sizeof(struct kvm_xsave);
