// C++ unit tests of the VMM core that need no /dev/kvm: exit decoding for every entry flavor,
// the address layout, ELF parsing, entry-flavor names and the error-code list. Built by the
// project's CMake as farcall-unit; test/unit.test.ts runs it under `npm test`.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <linux/kvm.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "../vmm/entry.h"
#include "../vmm/elf.h"
#include "../vmm/error.h"
#include "../vmm/exit.h"
#include "../vmm/layout.h"

using namespace farcall;
using namespace farcall::layout;

namespace {
ExitFacts fetch(EntryMode mode, uint64_t rip, uint16_t cs = kUserCs) {
  ExitFacts f;
  f.mode = mode;
  f.reason = KVM_EXIT_INTERNAL_ERROR;
  f.rip = rip;
  f.cs = cs;
  return f;
}
ExitFacts out(EntryMode mode, uint16_t port, bool gate = false) {
  ExitFacts f;
  f.mode = mode;
  f.reason = KVM_EXIT_IO;
  f.port = port;
  f.port_out = true;
  f.pvm_gate = gate;
  return f;
}
std::vector<uint8_t> file(const char *name) {
  std::string path = std::string(FARCALL_GUESTS_DIR) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "guest program not built: " << path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST_CASE("trap-page flavor: the fetch address names the event") {
  Decoded d = exit__decode(fetch(EntryMode::TrapPage, kTrapVa + kTrapSyscall));
  CHECK(d.kind == Decoded::Syscall);
  CHECK_FALSE(d.via_call);
  d = exit__decode(fetch(EntryMode::TrapPage, kTrapVa + kTrapSdkCall));
  CHECK(d.kind == Decoded::Syscall);
  CHECK(d.via_call);
  CHECK(exit__decode(fetch(EntryMode::TrapPage, kTrapVa + kTrapGateReturn)).kind == Decoded::GateReturn);
  CHECK(exit__decode(fetch(EntryMode::TrapPage, kGateVa + 5 * kGateStride + 16)).kind == Decoded::GateCall);
  for (int v : {0, 6, 13, 14, 255}) {
    d = exit__decode(fetch(EntryMode::TrapPage, kTrapVa + kTrapVector + 8 * uint64_t(v), kKernelCs));
    CHECK(d.kind == Decoded::Exception);
    CHECK(d.vector == v);
  }
}

TEST_CASE("trap-page flavor: a user jump that imitates an exception is not one") {
  Decoded d = exit__decode(fetch(EntryMode::TrapPage, kTrapVa + kTrapVector + 8 * 14, kUserCs));
  CHECK(d.kind == Decoded::Unexpected);
  CHECK(d.detail.find("jump into the trap page") != std::string::npos);
  CHECK(exit__decode(fetch(EntryMode::TrapPage, kTrapVa + kTrapVector + 3, kKernelCs)).kind == Decoded::Unexpected);
  CHECK(exit__decode(fetch(EntryMode::TrapPage, kTrapVa + 0x7f0)).kind == Decoded::Unexpected);
  // Outside the trap page and the gate region, an emulation failure is just that.
  CHECK(exit__decode(fetch(EntryMode::TrapPage, 0x401000)).kind == Decoded::Unexpected);
  // The other flavors map no trap page: a fetch there never decodes as an event.
  CHECK(exit__decode(fetch(EntryMode::OutStub, kTrapVa + kTrapSyscall)).kind == Decoded::Unexpected);
  CHECK(exit__decode(fetch(EntryMode::PvmNative, kTrapVa + kTrapSyscall)).kind == Decoded::Unexpected);
}

TEST_CASE("out-stub and pvm-native flavors: one port per event") {
  CHECK(exit__decode(out(EntryMode::OutStub, kPortSyscall)).kind == Decoded::Syscall);
  Decoded d = exit__decode(out(EntryMode::OutStub, kPortVector + 14));
  CHECK(d.kind == Decoded::Exception);
  CHECK(d.vector == 14);
  d = exit__decode(out(EntryMode::PvmNative, kPvmPortVector + 6));
  CHECK(d.kind == Decoded::Exception);
  CHECK(d.vector == 6);
  d = exit__decode(out(EntryMode::OutStub, kPortSpurious));
  CHECK(d.kind == Decoded::Exception);
  CHECK(d.vector == 255);
  // The in-guest gate's ports mean something only to a VM that has the gate.
  CHECK(exit__decode(out(EntryMode::PvmNative, kPortGateWait, true)).kind == Decoded::GateWait);
  CHECK(exit__decode(out(EntryMode::PvmNative, kPortGateSyscall, true)).kind == Decoded::GateSyscall);
  CHECK(exit__decode(out(EntryMode::PvmNative, kPortGateNotify, true)).kind == Decoded::GateNotify);
  CHECK(exit__decode(out(EntryMode::PvmNative, kPortGateCommit, true)).kind == Decoded::GateCommit);
  CHECK(exit__decode(out(EntryMode::PvmNative, kPortGateBad, true)).kind == Decoded::Unexpected);
  CHECK(exit__decode(out(EntryMode::PvmNative, kPortGateWait, false)).kind == Decoded::Unexpected);
  // In the trap-page flavor no guest code may `out`: a port exit is never an event.
  CHECK(exit__decode(out(EntryMode::TrapPage, kPortSyscall)).kind == Decoded::Unexpected);
  ExitFacts in = out(EntryMode::OutStub, kPortSyscall);
  in.port_out = false;
  CHECK(exit__decode(in).kind == Decoded::Unexpected);
}

TEST_CASE("other exits") {
  ExitFacts f;
  f.reason = KVM_EXIT_MMIO;
  CHECK(exit__decode(f).kind == Decoded::Mmio);
  f.reason = KVM_EXIT_INTR;
  CHECK(exit__decode(f).kind == Decoded::Interrupted);
  f.reason = KVM_EXIT_HLT;
  CHECK(exit__decode(f).kind == Decoded::Halt);
  f.reason = KVM_EXIT_SHUTDOWN;
  CHECK(exit__decode(f).detail.find("triple fault") != std::string::npos);
  f.reason = 9999;
  CHECK(exit__decode(f).kind == Decoded::Unexpected);
}

TEST_CASE("layout: regions that must not overlap do not") {
  CHECK(kMaxUserRam <= kKernelGpa);                        // request RAM below the kernel region
  CHECK(kTrapGpa >= kKernelGpa + kKernelSize);             // the trap page has no memslot behind it
  CHECK(kGateGpa >= kTrapGpa + kPage);
  CHECK(kGateVa + kGateRegionSize <= kBackendVa);           // gate addresses below every backend window
  CHECK(kMaxUserRam <= kGateVa);                            // and above all request RAM
  CHECK(kBackendVaEnd <= kKernelVa);
  CHECK(kPvmScratchGpa + kPvmScratchSize <= kPvmLockGpa);
  CHECK(kGateEntries * 16 == kGateStride);
  CHECK(kTrapVector + 8 * 256 <= kTrapGateReturn);          // event offsets in the trap page are distinct
  CHECK(kTrapGateReturn < kTrapSdkCall);
  CHECK(kTrapSdkCall < kPage);
}

TEST_CASE("layout: the stack guard sits below the main stack, inside RAM") {
  for (uint64_t ram : {16ull << 20, 64ull << 20, 1ull << 30}) {
    uint64_t lo = stack__guard_lo(0, ram), hi = stack__guard_hi(0, ram);
    CHECK(hi - lo == kStackGuard);
    CHECK(hi == ram - stack__bytes(ram));
    CHECK(lo > kProgramBase);
    CHECK(lo % kPage == 0);
  }
  CHECK(stack__bytes(1ull << 30) == 8ull << 20);  // capped at 8 MiB
  CHECK(stack__guard_hi(kBackendVa, 64ull << 20) == kBackendVa + (64ull << 20) - (8ull << 20));
}

TEST_CASE("ELF: static programs are accepted, everything else refused with its own code") {
  auto hello = file("hello_musl");
  ElfImage img = elf__inspect(hello);
  CHECK(img.entry >= kProgramBase);
  CHECK(img.phnum > 0);
  CHECK(img.end > img.lowest);
  auto code_of = [](const std::vector<uint8_t> &f) {
    try {
      elf__inspect(f);
    } catch (const VmmError &e) {
      return std::string(error_code__name(e.code()));
    }
    return std::string("accepted");
  };
  CHECK(code_of(file("hello_dynamic")) == "DynamicallyLinked");
  CHECK(code_of({'n', 'o', 't', ' ', 'e', 'l', 'f'}) == "NotElf");
  CHECK(code_of({}) == "NotElf");
  std::vector<uint8_t> cls32 = hello;
  cls32[4] = 1;  // ELFCLASS32
  CHECK(code_of(cls32) == "WrongArch");
  std::vector<uint8_t> cut(hello.begin(), hello.begin() + 100);
  CHECK(code_of(cut) == "CorruptElf");
  std::vector<uint8_t> phoff = hello;
  uint64_t far = ~0ull - 8;
  std::memcpy(phoff.data() + 32, &far, 8);  // e_phoff past the end (and wrapping)
  CHECK(code_of(phoff) == "CorruptElf");
}

TEST_CASE("entry flavors by name; unknown names refused") {
  CHECK(entry__parse("trap-page") == EntryMode::TrapPage);
  CHECK(entry__parse("out-stub") == EntryMode::OutStub);
  CHECK(entry__parse("pvm-native") == EntryMode::PvmNative);
  for (const char *bad : {"", "TRAP-PAGE", "pvm", "trap-page "}) {
    try {
      entry__parse(bad);
      FAIL("accepted " << bad);
    } catch (const VmmError &e) {
      CHECK(e.code() == ErrorCode::InvalidArgument);
      CHECK(std::string(e.what()).find("trap-page, out-stub, pvm-native") != std::string::npos);
    }
  }
  for (EntryMode m : {EntryMode::TrapPage, EntryMode::OutStub, EntryMode::PvmNative}) CHECK(entry__parse(entry_mode__name(m)) == m);
}

TEST_CASE("error codes: one list, names unique") {
  size_t n = 0;
  const char *const *names = error_code__all(&n);
  REQUIRE(n > 15);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) CHECK(std::strcmp(names[i], names[j]) != 0);
  CHECK(std::string(error_code__name(ErrorCode::Dynamic)) == "DynamicallyLinked");
  CHECK(std::string(error_code__name(ErrorCode::InvalidArgument)) == "InvalidArgument");
}
