// Bare round-trip baselines for benchmarks: what one VM exit costs on this host, measured with
// the smallest guest code that causes it, beside the VMM's own system-call path. No Node here;
// the addon (native/addon/bench.cpp) exposes it to bench/foundation.ts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace farcall {

// Runs `iterations` round trips of one kind (after a short untimed warm-up) and returns the
// host-measured time of each, in nanoseconds. Kinds:
//  "exit-out"    ring-0 guest `1: out %al,$0x10; jmp 1b`; the host loops KVM_RUN (KVM_EXIT_IO).
//  "trap-mmio"   ring-3 guest `1: mov %al,(%rbx); jmp 1b`, rbx on a page mapped to a guest-physical
//                address with no memslot: KVM_EXIT_MMIO per write (the portable doorbell).
//  "trap-fetch"  ring-3 guest `jmp *%rbx` into the unbacked trap page: KVM_EXIT_INTERNAL_ERROR;
//                the host puts RIP back through the sync-regs area (no ioctl) and runs again.
//  "syscall"     ring-3 guest `1: mov $110,%eax; syscall; jmp 1b` (getppid) through Vm::run and
//                Vm::syscall_return, in the host's default entry mode (trap page or out stub).
//  "vm-create"   a whole Vm (memory, kernel tables, vCPU) created and run to its first exit;
//                one VM per iteration.
// Throws VmmError when the kind is unknown or the guest does something else than expected.
std::vector<uint64_t> baseline__run(const std::string &kind, int iterations);

// The kinds baseline__run accepts, for error messages and listings.
const std::vector<std::string> &baseline__kinds();

}  // namespace farcall
