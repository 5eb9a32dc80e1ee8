// A writable scratch directory held in the VMM as plain data: a tree of names -> inodes, each
// file a list of 4 KiB pages. It lives in Personality::MemState, so whatever restores that
// (a fork's reset, a backend call's undo under durability 'call', an instance restore) restores
// the files with it: a request's files are gone after it, a backend instance's files persist
// between its calls and lose exactly what a failed call wrote.
//
// Copies are cheap: a ScratchFs shares its tree with the copy it came from, and pages are
// shared between trees; the first change after a copy clones the tree's metadata (not the
// pages), and a write clones only the pages it touches. So a reset that assigns the master's
// MemState back costs a pointer copy, and two forks of one master never see each other's pages.
// A tree is only ever changed by the one thread that owns the MemState holding it; shared
// parts are read-only (a use count of 1 means no other holder can exist).
//
// No symbolic or hard links can be made (EPERM), so a path inside the tree means exactly what
// it says and ".." is resolved by name by the caller (scratchcalls.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace farcall {

struct ScratchStat {
  uint64_t ino = 0, nlink = 0, size = 0, blocks = 0;  // blocks: 512-byte units held
  uint32_t mode = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
};

class ScratchFs {
 public:
  static constexpr uint64_t kPage = 4096;
  static constexpr uint64_t kRoot = 1;        // the mount point's inode
  static constexpr size_t kMaxNodes = 65536;  // files and directories (ENOSPC past it)
  static constexpr size_t kMaxName = 255;

  ScratchFs();
  // The inode `path` (components below the mount point, no "." or "..") names, or -errno.
  int64_t lookup(const std::vector<std::string> &path) const;
  // A new file or directory `name` in directory `dir`: its inode, or -errno (EEXIST...).
  int64_t create(uint64_t dir, const std::string &name, uint32_t mode, bool directory);
  // Removes `name` from `dir` (rmdir: only an empty directory; unlink: never a directory).
  int remove(uint64_t dir, const std::string &name, bool directory);
  // Moves `from_dir/from` to `to_dir/to`, replacing a file there (or an empty directory by a
  // directory), as rename(2) does; `noreplace`: EEXIST instead.
  int rename(uint64_t from_dir, const std::string &from, uint64_t to_dir, const std::string &to, bool noreplace);
  int64_t read(uint64_t ino, uint8_t *dst, uint64_t len, uint64_t off) const;
  // Writes as much as fits under `max_pages` (a short count, or -ENOSPC when nothing fits).
  int64_t write(uint64_t ino, const uint8_t *src, uint64_t len, uint64_t off, uint64_t max_pages);
  int truncate(uint64_t ino, uint64_t size, uint64_t max_pages);
  int stat(uint64_t ino, ScratchStat *st) const;
  int chmod(uint64_t ino, uint32_t mode);
  bool is_dir(uint64_t ino) const;
  // linux_dirent64 records from position `*pos` (0 ".", 1 "..", then entries by name).
  int64_t getdents(uint64_t ino, uint8_t *buf, uint64_t len, uint64_t *pos) const;
  // Frees the files that have no name left and are not in `open` (the inodes fds refer to).
  void collect(const std::set<uint64_t> &open);
  bool has_orphans() const { return !t_->orphans.empty(); }
  uint64_t pages() const { return t_->pages; }

 private:
  using Page = std::array<uint8_t, kPage>;
  struct Node {
    bool dir = false;
    uint32_t mode = 0;  // permission bits
    uint64_t nlink = 1, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    // files: page index -> page; a page not held reads as zero. A map, not a vector, so a
    // sparse file (a write or truncate far past its end) costs only the pages it holds.
    std::map<uint64_t, std::shared_ptr<Page>> data;
    std::map<std::string, uint64_t> entries;  // directories
    uint64_t parent = kRoot;
  };
  struct Tree {
    std::map<uint64_t, Node> nodes;
    std::set<uint64_t> orphans;  // files unlinked while possibly open
    uint64_t next_ino = kRoot + 1, pages = 0;
  };
  Tree &w();  // the tree, made this copy's own first
  Node *node(uint64_t ino);
  const Node *node(uint64_t ino) const;
  void drop(Tree &t, uint64_t ino);
  std::shared_ptr<Tree> t_;
};

}  // namespace farcall
