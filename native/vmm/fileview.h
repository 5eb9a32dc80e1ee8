// A read-only view of a host directory for a guest ("/" in the guest is the view's root).
//
// Every path the guest names is resolved by the kernel, in one openat2() from the root's
// O_PATH fd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV: "..", absolute
// paths and absolute symlinks all stay inside the root, /proc-style magic links and other
// mounts are refused, and nothing is checked by string and then re-resolved (no TOCTOU).
// Opened files are host fds kept here for the life of the view and named by a small id; the
// guest's fd table (plain data, reset with the fork) holds only ids and offsets. Ids are
// deduplicated by inode, so a request that reopens a file does not grow the set.
// A fork or a backend instance works in its own layer (layer()): it sees every object of the
// view below it and keeps what it opens itself apart, so a reset that drops the layer closes
// those, and one request cannot fill the table for the next.
// Thread-safe: a master's view is read by all its forks.
#pragma once
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace farcall {

struct GuestView;
// Writes `st` at guest address `at` as the x86-64 kernel lays out struct stat (or struct statx),
// every byte set (files.cpp); false if the guest range is not writable.
bool write_guest_stat(const GuestView &mem, uint64_t at, const struct stat &st, bool statx);

class FileView {
 public:
  // Opens `dir` (a host directory); throws VmmError(InvalidArgument) if it is not one.
  static std::shared_ptr<FileView> open_root(const std::string &dir);
  // A new, empty layer over `below` (which must not open more files once layers exist).
  static std::shared_ptr<FileView> layer(std::shared_ptr<FileView> below);
  // The view this layer lies over (null for a root view).
  const std::shared_ptr<FileView> &below() const { return below_; }
  ~FileView();
  // Resolves `path` (guest form: absolute or relative to the root) and returns the id of the
  // regular file or directory it names, or a negative errno. `follow`: follow a final symlink
  // (else ELOOP, as O_NOFOLLOW).
  int open(const std::string &path, bool follow, bool want_dir);
  // stat/lstat of a path, without keeping anything open.
  int stat_path(const std::string &path, bool follow, struct stat *st);
  int stat(int id, struct stat *st);
  int64_t pread(int id, void *buf, uint64_t len, uint64_t off);
  // Reads until `len` bytes or the end of the file: a host read can be short (9p, FUSE), and a
  // mapping's copy must not be.
  int64_t pread_all(int id, void *buf, uint64_t len, uint64_t off);
  // getdents64 from the directory position `*pos` (a host cookie); advances it.
  int64_t getdents(int id, void *buf, uint64_t len, uint64_t *pos);
  int64_t readlink(const std::string &path, char *buf, uint64_t len);
  // The whole regular file `path` (at most `max` bytes) into `out`: 0, or a negative errno.
  int read_file(const std::string &path, uint64_t max, std::vector<uint8_t> *out);
  uint64_t max_objects() const { return 4096; }

 private:
  FileView() = default;
  int host(int id);
  int find(std::pair<dev_t, ino_t> key);  // the id of an object open in this view or below, or -1
  std::shared_ptr<FileView> below_;
  int base_ = 0;  // this layer's ids start here; every id below it is below_'s
  int root_ = -1;  // a layer uses the root view's fd (kept open by below_)
  // Host fds held by the root view and all its layers: at most max_objects() together, so
  // forks cannot multiply the broker's open files (a running request can still take them all).
  std::atomic<uint64_t> held_{0};
  std::atomic<uint64_t> *total_ = &held_;  // the root's count
  std::mutex mu_;
  std::vector<int> objects_;
  std::map<std::pair<dev_t, ino_t>, int> by_inode_;
};

}  // namespace farcall
