#include "entry.h"

#include <cstdlib>
#include <mutex>

#include "error.h"
#include "flavor_idt.h"
#include "flavor_pvm.h"
#include "layout.h"
#include "vm.h"

namespace farcall {

namespace {
std::once_flag g_checked;
bool g_pvm_ok = false;
std::string g_reason;

// One tiny pvm-native VM, run once per process: the guest kernel's enable sequence, then user
// mode at address 0, which must come back as a page fault (vector 14) through the kernel's own
// entry. Anything else means this kvm_pvm does not give the PVM interface farcall relies on.
void pvm__self_check() {
  try {
    pvm::check_host();
    VmConfig vc;
    vc.ram_bytes = 4ull << 20;
    vc.mode = EntryMode::PvmNative;
    Vm vm(vc);
    Event ev = vm.run(Vcpu::now_ns() + 2000000000ull);
    if (ev.kind == Event::Exception && ev.vector == 14) {
      g_pvm_ok = true;
      return;
    }
    g_reason = "the pvm-native self-check VM stopped with an unexpected event (" +
               (ev.kind == Event::Exception ? "vector " + std::to_string(ev.vector) : ev.detail) + ")";
  } catch (const std::exception &e) {
    g_reason = std::string("the pvm-native self-check failed: ") + e.what();
  }
}
}  // namespace

EntryMode entry__parse(const std::string &name) {
  if (name == "trap-page") return EntryMode::TrapPage;
  if (name == "out-stub") return EntryMode::OutStub;
  if (name == "pvm-native") return EntryMode::PvmNative;
  throw VmmError(ErrorCode::InvalidArgument,
                 "entry flavor '" + name + "' is not one of trap-page, out-stub, pvm-native");
}

EntryMode entry__resolve(const std::string &requested) {
  if (!requested.empty()) return entry__parse(requested);
  if (const char *env = std::getenv("FARCALL_ENTRY"); env && *env) {
    try {
      return entry__parse(env);
    } catch (const VmmError &e) {
      throw VmmError(ErrorCode::InvalidArgument, std::string("FARCALL_ENTRY: ") + e.what());
    }
  }
  Kvm &kvm = Kvm::get();
  if (kvm.flavor() != KvmFlavor::Pvm) return EntryMode::OutStub;
  std::call_once(g_checked, pvm__self_check);
  return g_pvm_ok ? EntryMode::PvmNative : EntryMode::TrapPage;
}

std::unique_ptr<EntryFlavor> EntryFlavor::make(EntryMode mode) {
  switch (mode) {
    case EntryMode::TrapPage: return std::make_unique<TrapPageFlavor>();
    case EntryMode::OutStub: return std::make_unique<OutStubFlavor>();
    case EntryMode::PvmNative: return std::make_unique<PvmFlavor>();
  }
  throw VmmError(ErrorCode::InvalidArgument, "unknown entry flavor " + std::to_string(int(mode)));
}

uint64_t EntryFlavor::user_gs(const CpuState &st) const { return st.sregs.gs.base; }

bool flavor__trap_jump(Event &ev) {
  using namespace layout;
  if (ev.cr2 < kTrapVa || ev.cr2 >= kTrapVa + kPage || ev.rip != ev.cr2) return false;
  Event j;
  j.rip = ev.rip;
  j.detail = "jump into the trap page at offset " + std::to_string(ev.cr2 - kTrapVa);
  ev = j;
  return true;
}

std::string entry__fallback_reason() {
  if (Kvm::get().flavor() != KvmFlavor::Pvm) return "";
  std::call_once(g_checked, pvm__self_check);
  return g_reason;
}

}  // namespace farcall
