#include "exit.h"

#include <linux/kvm.h>

#include "layout.h"

namespace farcall {
using namespace layout;

namespace {
Decoded unexpected(std::string detail) {
  Decoded d;
  d.detail = std::move(detail);
  return d;
}

// An instruction fetch from the trap page, at offset `off` (trap-page flavor).
Decoded trap_page(uint64_t off, uint16_t cs) {
  Decoded d;
  if (off == kTrapSyscall || off == kTrapSdkCall) {
    d.kind = Decoded::Syscall;
    d.via_call = off == kTrapSdkCall;
  } else if (off == kTrapGateReturn) {
    d.kind = Decoded::GateReturn;
  } else if (off >= kTrapVector && off < kTrapVector + 8 * 256 && (off - kTrapVector) % 8 == 0 && cs == kKernelCs) {
    // Only the CPU's own exception delivery arrives with the kernel code segment; a user jump
    // to the same address (to fake an exception) keeps the user CS and is reported as a jump.
    d.kind = Decoded::Exception;
    d.vector = int((off - kTrapVector) / 8);
  } else {
    d = unexpected("jump into the trap page at offset " + std::to_string(off));
  }
  return d;
}

// A port write from the out-stub kernel or the PVM-native kernel (a user-mode `out` is a #GP
// in both and never exits).
Decoded port_out(const ExitFacts &f) {
  Decoded d;
  if (f.port == kPortSyscall) {
    d.kind = Decoded::Syscall;
    return d;
  }
  if (f.pvm_gate) {
    switch (f.port) {
      case kPortGateBad: return unexpected("call to an address that is not a registered entry point");
      case kPortGateWait: d.kind = Decoded::GateWait; return d;
      case kPortGateSyscall: d.kind = Decoded::GateSyscall; return d;
      case kPortGateNotify: d.kind = Decoded::GateNotify; return d;
      case kPortGateCommit: d.kind = Decoded::GateCommit; return d;
      default: break;
    }
  }
  uint16_t vbase = f.mode == EntryMode::PvmNative ? kPvmPortVector : kPortVector;
  if (f.port >= vbase && f.port < vbase + 32) {
    d.kind = Decoded::Exception;
    d.vector = f.port - vbase;
    return d;
  }
  if (f.port == kPortSpurious) {
    d.kind = Decoded::Exception;
    d.vector = 255;
    return d;
  }
  return unexpected("port I/O to 0x" + std::to_string(f.port));
}
}  // namespace

Decoded exit__decode(const ExitFacts &f) {
  switch (f.reason) {
    case KVM_EXIT_INTERNAL_ERROR:
      if (f.mode == EntryMode::TrapPage && f.rip >= kTrapVa && f.rip < kTrapVa + kPage) return trap_page(f.rip - kTrapVa, f.cs);
      if (f.mode == EntryMode::TrapPage && f.rip >= kGateVa && f.rip < kGateVa + kGateRegionSize) {
        Decoded d;
        d.kind = Decoded::GateCall;
        return d;
      }
      return unexpected("KVM internal error, suberror " + std::to_string(f.suberror));
    case KVM_EXIT_IO:
      if ((f.mode == EntryMode::OutStub || f.mode == EntryMode::PvmNative) && f.port_out) return port_out(f);
      return unexpected("port I/O to 0x" + std::to_string(f.port));
    case KVM_EXIT_MMIO: {
      Decoded d;
      d.kind = Decoded::Mmio;
      return d;
    }
    case KVM_EXIT_HLT: {
      Decoded d;
      d.kind = Decoded::Halt;
      d.detail = "guest halted";
      return d;
    }
    case KVM_EXIT_INTR: {
      Decoded d;
      d.kind = Decoded::Interrupted;
      return d;
    }
    case KVM_EXIT_SHUTDOWN: return unexpected("triple fault (guest shutdown)");
    default: return unexpected("unexpected KVM exit " + std::to_string(f.reason));
  }
}

}  // namespace farcall
