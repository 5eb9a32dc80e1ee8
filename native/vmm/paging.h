// Builds x86-64 4-level page tables inside a guest memory region.
#pragma once
#include <cstdint>

namespace farcall {

class GuestRegion;

namespace pte {
constexpr uint64_t P = 1, W = 2, U = 4, A = 1 << 5, D = 1 << 6, PS = 1 << 7, G = 1 << 8;
constexpr uint64_t NX = 1ull << 63;
constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;
}  // namespace pte

// Page-table pages are allocated from [first, limit) of `region`, which sits at guest
// physical `region_gpa`. Accessed/dirty bits are preset in every entry so the CPU never
// writes page tables (under shadow paging those writes are emulated and they would show
// up as dirty pages to reset).
class PageTables {
 public:
  PageTables(GuestRegion &region, uint64_t region_gpa, uint64_t first, uint64_t limit);
  uint64_t root_gpa() const { return root_; }
  // Maps [va, va+size) to [gpa, gpa+size) under `root` (default: the first root); uses
  // 2 MiB pages where both are aligned.
  void map(uint64_t va, uint64_t gpa, uint64_t size, uint64_t flags, uint64_t root = 0);
  // A new, empty root in the same table area.
  uint64_t add_root();
  // Two new, empty roots R and R + 0x1000 with bit 12 of R clear (kvm_pvm's kernel/user pair).
  uint64_t add_root_pair();
  // Copies PML4 entry `slot` from root `from` into root `to` (the subtree is shared).
  void share_slot(uint64_t to, uint64_t from, unsigned slot);
  uint64_t used_bytes() const { return next_ - first_; }
  // A program's RAM [va, va + bytes) -> gpa, user-writable, except page 0 (null pointers) and the
  // guard below the main stack (layout::stack__guard_lo/hi), which stay unmapped.
  void map_user_ram(uint64_t va, uint64_t gpa, uint64_t bytes, uint64_t root = 0);

 private:
  uint64_t *table(uint64_t gpa);
  uint64_t alloc();
  uint64_t *walk(uint64_t root, uint64_t va, int level_wanted);
  GuestRegion &region_;
  uint64_t region_gpa_, first_, next_, limit_, root_;
};

}  // namespace farcall
