// Guest memory: host mappings of memfds that back guest-physical ranges.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace farcall {

// A memfd and the host mapping of it. A fork maps its master's memfd MAP_PRIVATE, so
// untouched pages are shared with the master and written pages become the fork's own.
class GuestRegion {
 public:
  static std::shared_ptr<GuestRegion> create(size_t size, const char *name);
  static std::shared_ptr<GuestRegion> fork_of(const std::shared_ptr<GuestRegion> &master);
  // [offset, offset + size) of a file mapped MAP_PRIVATE (a snapshot's memory): copy-on-write
  // like a fork, and forks of it map the same file. The file must not change while mapped.
  static std::shared_ptr<GuestRegion> map_file(int fd, uint64_t offset, size_t size);
  ~GuestRegion();
  GuestRegion(const GuestRegion &) = delete;
  GuestRegion &operator=(const GuestRegion &) = delete;

  uint8_t *host() const { return host_; }
  size_t size() const { return size_; }
  size_t pages() const { return size_ / 4096; }
  // Bytes of the memfd (a fork's: its master's) that hold pages: what the guest has touched.
  uint64_t allocated_bytes() const;
  bool is_fork() const { return master_ != nullptr; }
  // Private pages over a file or a master: never punched (that would change what is below).
  bool is_private() const { return master_ != nullptr || file_; }
  const GuestRegion *master() const { return master_.get(); }

  // Zeroes [off, off+len): the guest sees fresh anonymous memory there.
  void zero(size_t off, size_t len);
  // Host writes into guest memory are invisible to KVM's dirty log; they are recorded here
  // while tracking is on, so a fork reset can rewrite them too.
  void set_host_tracking(bool on);
  void mark_host_dirty(size_t off, size_t len);
  std::vector<uint64_t> &host_dirty() { return host_dirty_; }
  // Calls fn(page) for each page marked since the last call, and clears the marks. Only the
  // words between the lowest and highest mark are read: a large sparse region costs nothing.
  template <class F>
  void take_host_dirty(F fn) {
    for (size_t w = hd_lo_; w < hd_hi_ && w < host_dirty_.size(); w++) {
      for (uint64_t bits = host_dirty_[w]; bits; bits &= bits - 1) fn(w * 64 + __builtin_ctzll(bits));
      host_dirty_[w] = 0;
    }
    hd_lo_ = SIZE_MAX;
    hd_hi_ = 0;
  }
  // The [offset, length) ranges of the memfd that hold pages (everything else reads as zero and
  // takes no memory); found with SEEK_DATA/SEEK_HOLE, so holes are never touched.
  std::vector<std::pair<size_t, size_t>> data_ranges() const;
  // Copies the pages of this region that hold non-zero data into `dst` (at least as large):
  // holes are never read (reading a memfd hole would allocate it), so the copy stays as sparse.
  void copy_data_to(GuestRegion &dst) const;
  // Frees every page of a shared region (it reads as zero again).
  void punch_all();
  // Frees the pages of a memfd region outside `keep` (ranges as data_ranges() gives them).
  // Nothing for a fork or a file-backed region.
  void punch_outside(const std::vector<std::pair<size_t, size_t>> &keep);
  // Drops the fork's private pages whose bits are set (one bit per page), run by run.
  void drop_pages(const std::vector<uint64_t> &bits);

 private:
  GuestRegion() = default;
  int fd_ = -1;
  uint64_t file_off_ = 0;  // where the region starts in fd_ (snapshot files)
  bool file_ = false;
  uint8_t *host_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<GuestRegion> master_;
  bool tracking_ = false;
  std::vector<uint64_t> host_dirty_;  // one bit per page
  size_t hd_lo_ = SIZE_MAX, hd_hi_ = 0;  // words [lo, hi) hold every mark since take_host_dirty()
};

// A region as the guest sees it: guest-virtual [va, va + size) backed by `region`.
// Every pointer a guest hands the VMM is checked and translated here.
struct GuestView {
  GuestRegion *region = nullptr;
  uint64_t va = 0;
  uint64_t end() const;
  // Host pointer for [a, a+len) when it lies wholly in the region (never page 0), else null.
  uint8_t *ptr(uint64_t a, uint64_t len) const;
  bool write(uint64_t a, const void *src, uint64_t len) const;  // records the write for resets
  bool read(void *dst, uint64_t a, uint64_t len) const;
  void zero(uint64_t a, uint64_t len) const;
  void mark(uint64_t a, uint64_t len) const;
};

}  // namespace farcall
