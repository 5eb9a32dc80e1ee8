// Snapshots: a master (stopped at farcall_ready()) or a backend (its instances' state) written
// to a file, and restored from it without running the program again.
//
// The file (little-endian; docs/architecture.md, "Snapshots"):
//   page 0   header: magic, format version, farcall version, kind, file size, the CPU feature
//            fingerprint and entry mode it was taken under, a section table, and a CRC32C of the
//            header page itself;
//   then     sections at page-aligned offsets: META (everything but memory, a record read with
//            bounds checks) and memory images, page for page, zero pages left as holes (the file
//            is as sparse as the guest memory, and a restored master maps it copy-on-write).
// Each section has a CRC32C: of its bytes (META), or of its non-zero pages each with its index
// (memory; so the sum does not depend on which zero pages a copy of the file made holes).
// Nothing read from a file is trusted before it is checked: sizes and offsets against the file's
// size, addresses against the guest layout, CPU state against what the guest itself could set.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvm.h"

namespace farcall {

class GuestRegion;

// CRC32C (Castagnoli): SSE4.2 where the CPU has it.
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

namespace snapshot {

enum class Kind : uint32_t { Master = 1, Backend = 2 };
enum SectionType : uint32_t { kMeta = 1, kRam = 2, kServe = 3, kInstance = 4 };

constexpr uint32_t kFormat = 2;  // 2: a master records its memory limit apart from its address space, and its thread limit
constexpr uint64_t kHeaderBytes = 4096;
constexpr uint32_t kMaxSections = 64;
constexpr uint64_t kMaxMeta = 16ull << 20;
// Header fields (byte offsets in page 0).
constexpr size_t kOffMagic = 0, kOffFormat = 8, kOffKind = 12, kOffVersion = 16, kOffFileSize = 48,
                 kOffSections = 56, kOffHeaderCrc = 60, kOffXcr0 = 64, kOffMode = 72, kOffLeafCount = 76,
                 kOffLeaves = 80, kOffTable = 256;
constexpr size_t kVersionBytes = 32, kLeafCount = 16, kTableEntry = 32;  // entry: type, crc, offset, length, 0
constexpr char kMagic[8] = {'F', 'A', 'R', 'C', 'S', 'N', 'A', 'P'};

// The sum of a memory section [off, off + len) of `fd`: its non-zero pages, each after its index.
uint32_t memory_sum(int fd, uint64_t off, uint64_t len);
// The header's own sum (page 0 with the sum field taken as zero).
uint32_t header_sum(const uint8_t *page);

// Forgets which files were checked: the next open() sums their memory again. For tools that
// rewrite a file in place faster than its timestamps move (the fuzzer).
void forget_verified();

struct Section {
  uint32_t type = 0, crc = 0;
  uint64_t off = 0, len = 0;
};

// A snapshot file opened and checked: header, section table, META, and every memory section's
// sum. Memory sums are computed once per file per process (a file is known by device, inode,
// size and change times; farcall replaces snapshot files by renaming, never in place).
class File {
 public:
  // Throws VmmError SnapshotCorrupt (damaged, truncated, not a snapshot) or SnapshotIncompatible
  // (another format or farcall version, another CPU feature set, the other kind).
  static std::unique_ptr<File> open(const std::string &path, Kind kind);
  ~File();
  File(const File &) = delete;
  File &operator=(const File &) = delete;
  const std::vector<uint8_t> &meta() const { return meta_; }
  // The entry flavor the snapshot's VMs were configured with (a restored one gets the same).
  EntryMode mode() const { return mode_; }
  std::vector<Section> memory(uint32_t type) const;
  // A memory section mapped copy-on-write (MAP_PRIVATE).
  std::shared_ptr<GuestRegion> map(const Section &s) const;

 private:
  File() = default;
  int fd_ = -1;
  EntryMode mode_ = EntryMode::TrapPage;
  std::vector<Section> sections_;
  std::vector<uint8_t> meta_;
};

// Writes a snapshot: memory sections, then META, into a temporary file beside `path` that
// replaces `path` (rename) once complete and synced. Removed if commit() is never reached.
class Writer {
 public:
  Writer(const std::string &path, Kind kind, EntryMode mode);
  ~Writer();
  Writer(const Writer &) = delete;
  Writer &operator=(const Writer &) = delete;
  void add_memory(uint32_t type, const GuestRegion &r);
  // Returns the file's size.
  uint64_t commit(const std::vector<uint8_t> &meta);

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  Kind kind_;
  EntryMode mode_;
  uint64_t next_ = kHeaderBytes;
  std::vector<Section> sections_;
};

}  // namespace snapshot
}  // namespace farcall
