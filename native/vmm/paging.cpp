#include "paging.h"

#include <cstring>

#include "error.h"
#include "layout.h"
#include "memory.h"

namespace farcall {

PageTables::PageTables(GuestRegion &region, uint64_t region_gpa, uint64_t first, uint64_t limit)
    : region_(region), region_gpa_(region_gpa), first_(first), next_(first), limit_(limit) {
  root_ = alloc();
}

uint64_t PageTables::alloc() {
  if (next_ + 4096 > limit_) throw VmmError(ErrorCode::Internal, "page-table area exhausted");
  uint64_t off = next_;
  next_ += 4096;
  std::memset(region_.host() + off, 0, 4096);
  return region_gpa_ + off;
}

uint64_t *PageTables::table(uint64_t gpa) {
  return reinterpret_cast<uint64_t *>(region_.host() + (gpa - region_gpa_));
}

// Returns the entry for `va` at level 1 (PT), 2 (PD); creates intermediate tables.
uint64_t PageTables::add_root() { return alloc(); }

uint64_t PageTables::add_root_pair() {
  if ((region_gpa_ + next_) & 0x1000) alloc();  // the skipped page stays unused
  uint64_t k = alloc();
  alloc();
  return k;
}

uint64_t *PageTables::walk(uint64_t root, uint64_t va, int level_wanted) {
  uint64_t t = root;
  for (int level = 4; level > level_wanted; level--) {
    unsigned idx = (va >> (12 + 9 * (level - 1))) & 511;
    uint64_t &e = table(t)[idx];
    if (!(e & pte::P)) e = alloc() | pte::P | pte::W | pte::U | pte::A;
    if (e & pte::PS) throw VmmError(ErrorCode::Internal, "page-table map over a large page");
    t = e & pte::kAddrMask;
  }
  return &table(t)[(va >> (12 + 9 * (level_wanted - 1))) & 511];
}

void PageTables::map(uint64_t va, uint64_t gpa, uint64_t size, uint64_t flags, uint64_t root) {
  if (!root) root = root_;
  uint64_t end = va + size;
  flags |= pte::P | pte::A | pte::D;
  while (va < end) {
    if ((va & ((2 << 20) - 1)) == 0 && (gpa & ((2 << 20) - 1)) == 0 && end - va >= (2 << 20)) {
      *walk(root, va, 2) = gpa | flags | pte::PS;
      va += 2 << 20;
      gpa += 2 << 20;
    } else {
      *walk(root, va, 1) = gpa | flags;
      va += 4096;
      gpa += 4096;
    }
  }
}

void PageTables::share_slot(uint64_t to, uint64_t from, unsigned slot) { table(to)[slot] = table(from)[slot]; }

void PageTables::map_user_ram(uint64_t va, uint64_t gpa, uint64_t bytes, uint64_t root) {
  uint64_t lo = va == 0 ? layout::kPage : va, glo = layout::stack__guard_lo(va, bytes),
           ghi = layout::stack__guard_hi(va, bytes);
  map(lo, gpa + (lo - va), glo - lo, pte::W | pte::U, root);
  map(ghi, gpa + (ghi - va), va + bytes - ghi, pte::W | pte::U, root);
}

}  // namespace farcall
