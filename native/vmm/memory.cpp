#include "memory.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "error.h"

namespace farcall {

std::shared_ptr<GuestRegion> GuestRegion::create(size_t size, const char *name) {
  std::shared_ptr<GuestRegion> r(new GuestRegion());
  r->size_ = size;
  r->fd_ = memfd_create(name, MFD_CLOEXEC);
  if (r->fd_ < 0) error__sys("memfd_create");
  if (ftruncate(r->fd_, size) < 0) error__sys("ftruncate guest memory");
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r->fd_, 0);
  if (p == MAP_FAILED) error__sys("mmap guest memory");
  r->host_ = static_cast<uint8_t *>(p);
  return r;
}

std::shared_ptr<GuestRegion> GuestRegion::fork_of(const std::shared_ptr<GuestRegion> &master) {
  std::shared_ptr<GuestRegion> r(new GuestRegion());
  r->size_ = master->size_;
  r->master_ = master;
  void *p = mmap(nullptr, r->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, master->fd_, off_t(master->file_off_));
  if (p == MAP_FAILED) error__sys("mmap fork memory");
  r->host_ = static_cast<uint8_t *>(p);
  return r;
}

std::shared_ptr<GuestRegion> GuestRegion::map_file(int fd, uint64_t offset, size_t size) {
  std::shared_ptr<GuestRegion> r(new GuestRegion());
  r->size_ = size;
  r->file_ = true;
  r->file_off_ = offset;
  r->fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r->fd_ < 0) error__sys("dup snapshot file");
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, r->fd_, off_t(offset));
  if (p == MAP_FAILED) error__sys("mmap snapshot memory");
  r->host_ = static_cast<uint8_t *>(p);
  return r;
}

uint64_t GuestRegion::allocated_bytes() const {
  const GuestRegion *r = master_ ? master_.get() : this;
  struct stat st;
  if (fstat(r->fd_, &st) < 0) return 0;
  return std::min<uint64_t>(uint64_t(st.st_blocks) * 512, r->size_);
}

GuestRegion::~GuestRegion() {
  if (host_) munmap(host_, size_);
  if (fd_ >= 0) close(fd_);
}

void GuestRegion::zero(size_t off, size_t len) {
  if (off >= size_) return;
  if (len > size_ - off) len = size_ - off;
  // Whole pages of a shared mapping are cheapest to drop: the memfd hole reads as zero.
  // A fork cannot do that (dropping would reveal the master's page), so it writes zeros.
  size_t a = (off + 4095) & ~size_t(4095), b = (off + len) & ~size_t(4095);
  if (!is_private() && b > a && b - a >= (64u << 10)) {
    std::memset(host_ + off, 0, a - off);
    fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a, b - a);
    std::memset(host_ + b, 0, off + len - b);
  } else {
    std::memset(host_ + off, 0, len);
  }
  mark_host_dirty(off, len);
}

void GuestRegion::set_host_tracking(bool on) {
  tracking_ = on;
  if (on) host_dirty_.assign((pages() + 63) / 64, 0);
}

void GuestRegion::mark_host_dirty(size_t off, size_t len) {
  if (!tracking_ || len == 0) return;
  size_t p = off / 4096, e = (off + len - 1) / 4096;
  if (p >= pages()) return;
  hd_lo_ = std::min(hd_lo_, p / 64);
  hd_hi_ = std::max(hd_hi_, std::min(e, pages() - 1) / 64 + 1);
  for (; p <= e && p < pages(); p++) host_dirty_[p / 64] |= 1ull << (p % 64);
}

std::vector<std::pair<size_t, size_t>> GuestRegion::data_ranges() const {
  std::vector<std::pair<size_t, size_t>> out;
  if (fd_ < 0) {  // a fork's private mapping: no memfd of its own, report everything
    out.emplace_back(0, size_);
    return out;
  }
  // Offsets in the file, clamped to the region (a snapshot's region is a window of its file).
  off_t base = off_t(file_off_), end = base + off_t(size_), pos = base;
  while (pos < end) {
    off_t d = lseek(fd_, pos, SEEK_DATA);
    if (d < 0 || d >= end) break;  // ENXIO: no more data
    off_t h = lseek(fd_, d, SEEK_HOLE);
    if (h < 0 || h > end) h = end;
    out.emplace_back(size_t(d - base), size_t(h - d));
    pos = h;
  }
  return out;
}

void GuestRegion::copy_data_to(GuestRegion &dst) const {
  static const uint8_t zero[4096] = {};
  for (auto [off, len] : data_ranges())
    for (size_t o = off & ~size_t(4095); o < off + len && o + 4096 <= std::min(size_, dst.size_); o += 4096)
      if (std::memcmp(host_ + o, zero, 4096) != 0) std::memcpy(dst.host_ + o, host_ + o, 4096);
}

void GuestRegion::punch_outside(const std::vector<std::pair<size_t, size_t>> &keep) {
  if (is_private()) return;
  size_t at = 0;
  auto punch = [&](size_t a, size_t b) {
    if (b > a) fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(a), off_t(b - a));
  };
  for (auto [off, len] : keep) {
    punch(at, off);
    at = off + len;
  }
  punch(at, size_);
}

void GuestRegion::punch_all() {
  if (fd_ >= 0 && !is_private()) fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size_);
}

void GuestRegion::drop_pages(const std::vector<uint64_t> &bits) {
  if (!is_fork()) return;
  uint64_t n = std::min<uint64_t>(pages(), bits.size() * 64);
  auto set = [&](uint64_t p) { return (bits[p / 64] >> (p % 64)) & 1; };
  for (uint64_t p = 0; p < n;) {
    if (!bits[p / 64]) {
      p = (p / 64 + 1) * 64;
      continue;
    }
    if (!set(p)) {
      p++;
      continue;
    }
    uint64_t e = p;
    while (e < n && set(e)) e++;
    madvise(host_ + p * 4096, (e - p) * 4096, MADV_DONTNEED);
    p = e;
  }
}

uint64_t GuestView::end() const { return va + region->size(); }

uint8_t *GuestView::ptr(uint64_t a, uint64_t len) const {
  uint64_t lo = va < 4096 ? 4096 : va, hi = end();
  if (a < lo || a >= hi || len > hi - a) return nullptr;
  return region->host() + (a - va);
}

bool GuestView::write(uint64_t a, const void *src, uint64_t len) const {
  uint8_t *p = ptr(a, len);
  if (!p) return false;
  std::memcpy(p, src, len);
  region->mark_host_dirty(a - va, len);
  return true;
}

bool GuestView::read(void *dst, uint64_t a, uint64_t len) const {
  uint8_t *p = ptr(a, len);
  if (!p) return false;
  std::memcpy(dst, p, len);
  return true;
}

void GuestView::zero(uint64_t a, uint64_t len) const { region->zero(a - va, len); }
void GuestView::mark(uint64_t a, uint64_t len) const { region->mark_host_dirty(a - va, len); }

}  // namespace farcall
