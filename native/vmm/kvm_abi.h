// ioctl numbers whose argument struct ends in a flexible array. Their numbers encode
// sizeof(struct), and C++ sizes those structs differently from C with Debian's 6.1
// headers (kvm_cpuid2 is 12 bytes in C++, 8 in C), which turns the ioctl into EINVAL.
// kvm_abi.c computes them as C does.
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
extern const unsigned long farcall_ioc_get_supported_cpuid;
extern const unsigned long farcall_ioc_set_cpuid2;
extern const unsigned long farcall_ioc_set_msrs;
extern const unsigned long farcall_ioc_get_msrs;
extern const unsigned long farcall_ioc_get_xsave;
extern const unsigned long farcall_ioc_set_xsave;
extern const unsigned long farcall_sizeof_kvm_xsave;
#ifdef __cplusplus
}

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace farcall {
// The same C++ quirk moves the array inside those structs (an empty struct takes a byte in
// C++), so farcall builds them as a C header followed by entries, by hand.
template <class Entry>
struct KvmArray {
  explicit KvmArray(size_t n) : buf(8 + n * sizeof(Entry)) { count() = uint32_t(n); }
  uint32_t &count() { return *reinterpret_cast<uint32_t *>(buf.data()); }
  Entry *entries() { return reinterpret_cast<Entry *>(buf.data() + 8); }
  void *ptr() { return buf.data(); }
  std::vector<uint8_t> buf;
};
}  // namespace farcall
#endif
