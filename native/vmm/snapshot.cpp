// The snapshot file format (snapshot.h): checksums, reading with every field checked, writing.
#include "snapshot.h"

#include <fcntl.h>
#include <nmmintrin.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>

#include "error.h"
#include "kvm.h"
#include "memory.h"

#ifndef FARCALL_VERSION
#define FARCALL_VERSION "unknown"
#endif

namespace farcall {

namespace {

struct CrcTable {
  uint32_t t[256];
  CrcTable() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
      t[i] = c;
    }
  }
};

__attribute__((target("sse4.2"))) uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n) {
  uint64_t c64 = c;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
  }
  c = uint32_t(c64);
  for (; n; n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n) {
  static const CrcTable table;
  for (; n; n--) c = table.t[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

const bool g_hw_crc = __builtin_cpu_supports("sse4.2");

bool page_zero(const uint8_t *p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < 4096; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, 64);
    acc |= w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
    if (acc) return false;
  }
  return true;
}

uint32_t get32(const uint8_t *p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get64(const uint8_t *p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void put32(uint8_t *p, uint32_t v) { std::memcpy(p, &v, 4); }
void put64(uint8_t *p, uint64_t v) { std::memcpy(p, &v, 8); }

[[noreturn]] void corrupt(const std::string &path, const std::string &why) {
  throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path + " is unusable: " + why);
}
[[noreturn]] void incompatible(const std::string &path, const std::string &why) {
  throw VmmError(ErrorCode::SnapshotIncompatible, "snapshot " + path + " cannot be used here: " + why);
}

// The CPU features a snapshot's guest state depends on: what the guest saw in CPUID (its
// libc picked code paths by it, and its XSAVE image has that layout) and the XSAVE features.
struct Fingerprint {
  uint64_t xcr0 = 0;
  uint32_t leaves[snapshot::kLeafCount] = {};
};
struct LeafSpec {
  uint32_t function, index;
  int reg;  // 0 eax, 1 ebx, 2 ecx, 3 edx
  const char *name;
};
const LeafSpec kLeaves[] = {
    {0, 0, 1, "vendor (CPUID 0 EBX)"},   {0, 0, 3, "vendor (CPUID 0 EDX)"},   {0, 0, 2, "vendor (CPUID 0 ECX)"},
    {1, 0, 2, "CPUID 1 ECX"},            {1, 0, 3, "CPUID 1 EDX"},            {7, 0, 1, "CPUID 7.0 EBX"},
    {7, 0, 2, "CPUID 7.0 ECX"},          {7, 0, 3, "CPUID 7.0 EDX"},          {7, 1, 0, "CPUID 7.1 EAX"},
    {0xd, 0, 0, "XSAVE features (CPUID 0xD.0 EAX)"}, {0xd, 0, 2, "XSAVE area size (CPUID 0xD.0 ECX)"},
    {0xd, 1, 0, "CPUID 0xD.1 EAX"},      {0x80000001, 0, 2, "CPUID 0x80000001 ECX"},
    {0x80000001, 0, 3, "CPUID 0x80000001 EDX"},
};
static_assert(sizeof(kLeaves) / sizeof(kLeaves[0]) <= snapshot::kLeafCount);

Fingerprint host_fingerprint() {
  Kvm &k = Kvm::get();
  Fingerprint f;
  f.xcr0 = k.supported_xcr0();
  size_t i = 0;
  for (const LeafSpec &l : kLeaves) {
    for (auto &e : k.cpuid()) {
      if (e.function != l.function || (e.index != l.index && (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX))) continue;
      f.leaves[i] = l.reg == 0 ? e.eax : l.reg == 1 ? e.ebx : l.reg == 2 ? e.ecx : e.edx;
      break;
    }
    i++;
  }
  return f;
}

// Files whose memory sums were checked in this process (see File).
using FileId = std::tuple<dev_t, ino_t, off_t, int64_t, int64_t>;
std::mutex g_verified_mu;
std::set<FileId> g_verified;

FileId file_id(const struct stat &st) {
  return {st.st_dev, st.st_ino, st.st_size, int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

void write_all(int fd, const void *p, size_t n, uint64_t off, const std::string &path) {
  const uint8_t *b = static_cast<const uint8_t *>(p);
  while (n) {
    ssize_t w = pwrite(fd, b, n, off_t(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw VmmError(ErrorCode::Internal, "writing snapshot " + path + " failed: " + std::strerror(w < 0 ? errno : EIO));
    b += w;
    n -= size_t(w);
    off += uint64_t(w);
  }
}

// Calls fn(page index) for each page of [off, off + len) of `fd` that holds data (SEEK_DATA),
// once each, in order; holes are never read.
template <class F>
void data_pages(int fd, uint64_t off, uint64_t len, F fn) {
  uint64_t end = off + len, next = off;
  while (next < end) {
    off_t d = lseek(fd, off_t(next), SEEK_DATA);
    if (d < 0 || uint64_t(d) >= end) break;
    off_t h = lseek(fd, d, SEEK_HOLE);
    uint64_t hi = h < 0 || uint64_t(h) > end ? end : uint64_t(h);
    uint64_t lo = std::max(next, off + ((uint64_t(d) - off) & ~uint64_t(4095)));
    hi = std::min(end, off + ((hi - off + 4095) & ~uint64_t(4095)));
    if (hi <= lo) break;
    fn(lo, hi);
    next = hi;
  }
}

}  // namespace

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  return ~(g_hw_crc ? crc_hw(~crc, p, len) : crc_sw(~crc, p, len));
}

namespace snapshot {

uint32_t header_sum(const uint8_t *page) {
  uint8_t copy[kHeaderBytes];
  std::memcpy(copy, page, kHeaderBytes);
  put32(copy + kOffHeaderCrc, 0);
  return crc32c(0, copy, kHeaderBytes);
}

uint32_t memory_sum(int fd, uint64_t off, uint64_t len) {
  std::vector<uint8_t> buf(1 << 20);
  uint32_t crc = 0;
  data_pages(fd, off, len, [&](uint64_t lo, uint64_t hi) {
    for (uint64_t at = lo; at < hi;) {
      size_t n = size_t(std::min<uint64_t>(buf.size(), hi - at));
      ssize_t r = pread(fd, buf.data(), n, off_t(at));
      if (r < 0 && errno == EINTR) continue;
      if (r != ssize_t(n))
        throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot memory could not be read (truncated while open?)");
      for (size_t p = 0; p < n; p += 4096) {
        if (page_zero(buf.data() + p)) continue;
        uint64_t index = (at + p - off) / 4096;
        crc = crc32c(crc, &index, 8);
        crc = crc32c(crc, buf.data() + p, 4096);
      }
      at += n;
    }
  });
  return crc;
}

void forget_verified() {
  std::lock_guard<std::mutex> lk(g_verified_mu);
  g_verified.clear();
}

std::unique_ptr<File> File::open(const std::string &path, Kind kind) {
  std::unique_ptr<File> f(new File());
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) corrupt(path, std::string("cannot open it: ") + std::strerror(errno));
  struct stat st;
  if (fstat(f->fd_, &st) < 0 || !S_ISREG(st.st_mode)) corrupt(path, "not a regular file");
  uint64_t size = uint64_t(st.st_size);
  if (size < kHeaderBytes) corrupt(path, "shorter than a snapshot header (truncated?)");
  uint8_t h[kHeaderBytes];
  if (pread(f->fd_, h, kHeaderBytes, 0) != ssize_t(kHeaderBytes)) corrupt(path, "the header cannot be read");
  if (std::memcmp(h + kOffMagic, kMagic, sizeof kMagic) != 0) corrupt(path, "not a farcall snapshot (bad magic)");
  // Format and farcall version first: another version may lay out the rest differently.
  if (get32(h + kOffFormat) != kFormat)
    incompatible(path, "snapshot format " + std::to_string(get32(h + kOffFormat)) + ", this farcall reads format " +
                           std::to_string(kFormat));
  char version[kVersionBytes + 1] = {};
  std::memcpy(version, h + kOffVersion, kVersionBytes);
  if (header_sum(h) != get32(h + kOffHeaderCrc)) corrupt(path, "the header checksum does not match (damaged file)");
  if (std::strcmp(version, FARCALL_VERSION) != 0)
    incompatible(path, std::string("made by farcall ") + version + ", this is farcall " + FARCALL_VERSION);
  uint32_t k = get32(h + kOffKind);
  if (k != uint32_t(kind))
    incompatible(path, std::string("it is a ") + (k == uint32_t(Kind::Backend) ? "backend" : k == uint32_t(Kind::Master) ? "request pool" : "unknown") +
                           " snapshot, not a " + (kind == Kind::Backend ? "backend's" : "request pool's"));
  if (get64(h + kOffFileSize) != size)
    corrupt(path, "it has " + std::to_string(size) + " bytes, its header says " + std::to_string(get64(h + kOffFileSize)) +
                      " (truncated or extended)");
  Fingerprint here = host_fingerprint();
  uint32_t mode = get32(h + kOffMode);
  if (mode > uint32_t(EntryMode::PvmNative)) corrupt(path, "unknown entry flavor");
  f->mode_ = EntryMode(mode);
  if (get64(h + kOffXcr0) != here.xcr0) incompatible(path, "taken on a CPU with other XSAVE features (XCR0)");
  if (get32(h + kOffLeafCount) != kLeafCount) corrupt(path, "bad CPU fingerprint");
  for (size_t i = 0; i < sizeof(kLeaves) / sizeof(kLeaves[0]); i++)
    if (get32(h + kOffLeaves + 4 * i) != here.leaves[i])
      incompatible(path, std::string("taken on a CPU with other features: ") + kLeaves[i].name + " differs");

  uint32_t count = get32(h + kOffSections);
  if (count < 1 || count > kMaxSections) corrupt(path, "bad section count");
  const Section *meta = nullptr;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *e = h + kOffTable + kTableEntry * i;
    Section s{get32(e), get32(e + 4), get64(e + 8), get64(e + 16)};
    bool memory = s.type == kRam || s.type == kServe || s.type == kInstance;
    if (s.type != kMeta && !memory) corrupt(path, "unknown section type " + std::to_string(s.type));
    if (s.off < kHeaderBytes || s.off % 4096 || s.off > size || s.len > size - s.off)
      corrupt(path, "section " + std::to_string(i) + " lies outside the file (truncated?)");
    if (memory && (s.len == 0 || s.len % 4096)) corrupt(path, "memory section " + std::to_string(i) + " is not whole pages");
    f->sections_.push_back(s);
  }
  std::vector<Section> sorted = f->sections_;
  std::sort(sorted.begin(), sorted.end(), [](const Section &a, const Section &b) { return a.off < b.off; });
  for (size_t i = 1; i < sorted.size(); i++)
    if (sorted[i - 1].off + sorted[i - 1].len > sorted[i].off) corrupt(path, "sections overlap");
  for (auto &s : f->sections_)
    if (s.type == kMeta) {
      if (meta) corrupt(path, "two META sections");
      meta = &s;
    }
  if (!meta) corrupt(path, "no META section");
  if (meta->len > kMaxMeta) corrupt(path, "META section too large");
  f->meta_.resize(meta->len);
  if (pread(f->fd_, f->meta_.data(), meta->len, off_t(meta->off)) != ssize_t(meta->len)) corrupt(path, "META cannot be read");
  if (crc32c(0, f->meta_.data(), f->meta_.size()) != meta->crc) corrupt(path, "the META checksum does not match (damaged file)");

  FileId id = file_id(st);
  {
    std::lock_guard<std::mutex> lk(g_verified_mu);
    if (g_verified.count(id)) return f;
  }
  for (size_t i = 0; i < f->sections_.size(); i++) {
    const Section &s = f->sections_[i];
    if (s.type != kMeta && memory_sum(f->fd_, s.off, s.len) != s.crc)
      corrupt(path, "memory section " + std::to_string(i) + " checksum does not match (damaged file)");
  }
  std::lock_guard<std::mutex> lk(g_verified_mu);
  if (g_verified.size() > 4096) g_verified.clear();  // bounded: a long-lived process re-checks old files
  g_verified.insert(id);
  return f;
}

File::~File() {
  if (fd_ >= 0) close(fd_);
}

std::vector<Section> File::memory(uint32_t type) const {
  std::vector<Section> out;
  for (auto &s : sections_)
    if (s.type == type) out.push_back(s);
  std::sort(out.begin(), out.end(), [](const Section &a, const Section &b) { return a.off < b.off; });
  return out;
}

std::shared_ptr<GuestRegion> File::map(const Section &s) const { return GuestRegion::map_file(fd_, s.off, s.len); }

Writer::Writer(const std::string &path, Kind kind, EntryMode mode) : path_(path), kind_(kind), mode_(mode) {
  static std::atomic<unsigned> serial{0};
  tmp_ = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(serial++);
  // 0600: a snapshot holds guest memory, secrets included.
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    std::string why = std::strerror(errno);
    tmp_.clear();
    throw VmmError(ErrorCode::Internal, "cannot create snapshot file " + path + ": " + why);
  }
}

Writer::~Writer() {
  if (fd_ >= 0) close(fd_);
  if (!tmp_.empty()) unlink(tmp_.c_str());
}

void Writer::add_memory(uint32_t type, const GuestRegion &r) {
  Section s{type, 0, next_, r.size()};
  uint32_t crc = 0;
  const uint8_t *host = r.host();
  // Runs of non-zero pages, written together; zero pages stay holes.
  uint64_t run = 0, run_len = 0;
  auto flush = [&] {
    if (run_len) write_all(fd_, host + run, run_len, s.off + run, path_);
    run_len = 0;
  };
  uint64_t next = 0;
  for (auto [off, len] : r.data_ranges()) {
    uint64_t lo = std::max(next, off & ~uint64_t(4095)), hi = std::min<uint64_t>(r.size(), (off + len + 4095) & ~uint64_t(4095));
    for (uint64_t p = lo; p < hi; p += 4096) {
      if (page_zero(host + p)) {
        flush();
        continue;
      }
      uint64_t index = p / 4096;
      crc = crc32c(crc, &index, 8);
      crc = crc32c(crc, host + p, 4096);
      if (!run_len) run = p;
      run_len += 4096;
    }
    flush();
    next = std::max(next, hi);
  }
  s.crc = crc;
  next_ += r.size();
  sections_.push_back(s);
}

uint64_t Writer::commit(const std::vector<uint8_t> &meta) {
  if (sections_.size() + 1 > kMaxSections) throw VmmError(ErrorCode::Internal, "too many snapshot sections");
  Section m{kMeta, crc32c(0, meta.data(), meta.size()), next_, meta.size()};
  write_all(fd_, meta.data(), meta.size(), m.off, path_);
  sections_.push_back(m);
  uint64_t size = m.off + m.len;
  if (ftruncate(fd_, off_t(size)) < 0) throw VmmError(ErrorCode::Internal, "sizing snapshot " + path_ + " failed");

  uint8_t h[kHeaderBytes] = {};
  std::memcpy(h + kOffMagic, kMagic, sizeof kMagic);
  put32(h + kOffFormat, kFormat);
  put32(h + kOffKind, uint32_t(kind_));
  std::strncpy(reinterpret_cast<char *>(h + kOffVersion), FARCALL_VERSION, kVersionBytes - 1);
  put64(h + kOffFileSize, size);
  put32(h + kOffSections, uint32_t(sections_.size()));
  Fingerprint fp = host_fingerprint();
  put64(h + kOffXcr0, fp.xcr0);
  put32(h + kOffMode, uint32_t(mode_));
  put32(h + kOffLeafCount, kLeafCount);
  for (size_t i = 0; i < kLeafCount; i++) put32(h + kOffLeaves + 4 * i, fp.leaves[i]);
  for (size_t i = 0; i < sections_.size(); i++) {
    uint8_t *e = h + kOffTable + kTableEntry * i;
    put32(e, sections_[i].type);
    put32(e + 4, sections_[i].crc);
    put64(e + 8, sections_[i].off);
    put64(e + 16, sections_[i].len);
  }
  put32(h + kOffHeaderCrc, header_sum(h));
  write_all(fd_, h, kHeaderBytes, 0, path_);
  // On disk before it takes the name, and the name on disk before we say it is saved.
  if (fsync(fd_) < 0) throw VmmError(ErrorCode::Internal, "syncing snapshot " + path_ + " failed");
  close(fd_);
  fd_ = -1;
  if (rename(tmp_.c_str(), path_.c_str()) < 0)
    throw VmmError(ErrorCode::Internal, "renaming snapshot to " + path_ + " failed: " + std::strerror(errno));
  tmp_.clear();
  std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/') + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return size;
}

}  // namespace snapshot
}  // namespace farcall
