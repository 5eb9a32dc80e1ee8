#include "vmstock.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "vcpu.h"

namespace farcall::vmstock {

namespace {
struct Stock {
  std::mutex mu;
  std::vector<VmShell> idle, native;  // never ran pvm-native / did (VmShell::pvm_native)
  uint64_t max = 64, created = 0, reused = 0;
  Stock() {
    if (const char *v = std::getenv("FARCALL_VM_STOCK")) {
      char *end = nullptr;
      unsigned long long n = std::strtoull(v, &end, 10);
      if (end != v && !*end) max = n;
    }
  }
};
Stock &stock() {
  static Stock *s = new Stock();  // never destroyed: VMs may be retired during static teardown
  return *s;
}
void close_shell(VmShell &s) {
  s.vcpu.reset();
  if (s.vm_fd >= 0) close(s.vm_fd);
  s.vm_fd = -1;
}
}  // namespace

bool take(VmShell &out, bool pvm_native_ok) {
  Stock &s = stock();
  std::lock_guard<std::mutex> lk(s.mu);
  std::vector<VmShell> &from = pvm_native_ok && !s.native.empty() ? s.native : s.idle;
  if (from.empty()) return false;
  out = std::move(from.back());
  from.pop_back();
  s.reused++;
  return true;
}

void give(VmShell &&shell) {
  Stock &s = stock();
  {
    std::lock_guard<std::mutex> lk(s.mu);
    if (s.idle.size() + s.native.size() < s.max) {
      (shell.pvm_native ? s.native : s.idle).push_back(std::move(shell));
      return;
    }
  }
  close_shell(shell);  // outside the lock: closing a VM takes the kernel a while
}

void created() {
  Stock &s = stock();
  std::lock_guard<std::mutex> lk(s.mu);
  s.created++;
}

Stats stats() {
  Stock &s = stock();
  std::lock_guard<std::mutex> lk(s.mu);
  return Stats{s.max, s.idle.size() + s.native.size(), s.created, s.reused};
}

void set_max(uint64_t max) {
  Stock &s = stock();
  std::vector<VmShell> surplus;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    s.max = max;
    while (s.idle.size() + s.native.size() > max) {
      std::vector<VmShell> &from = s.native.empty() ? s.idle : s.native;
      surplus.push_back(std::move(from.back()));
      from.pop_back();
    }
  }
  for (auto &v : surplus) close_shell(v);
}

}  // namespace farcall::vmstock
