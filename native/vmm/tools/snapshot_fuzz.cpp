// farcall-snapfuzz: loads thousands of damaged copies of a snapshot and checks that each one is
// refused with a typed error (VmmError), or loads and serves, and never crashes or hangs.
//   farcall-snapfuzz master|backend SNAPSHOT ITERATIONS SEED
// Half the damaged copies get their checksums recomputed, so the checks behind the checksums
// (every size, offset, address and count of the header, section table and META) are reached too.
// Prints one JSON line of counts by outcome. Exit 0: every outcome typed; 1: an untyped error.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../backend.h"
#include "../entry.h"
#include "../error.h"
#include "../fork.h"
#include "../snapshot.h"

using namespace farcall;
namespace sn = farcall::snapshot;

namespace {

volatile sig_atomic_t g_iteration = 0;

void on_alarm(int) {
  char msg[96];
  int n = snprintf(msg, sizeof msg, "{\"hang\":%d}\n", int(g_iteration));
  (void)!write(1, msg, size_t(n));
  _exit(3);
}

struct Edit {
  uint64_t off;
  std::vector<uint8_t> old;
};

class Work {
 public:
  Work(int fd, uint64_t size) : fd_(fd), size_(size) {}
  void put(uint64_t off, const void *p, size_t n) {
    if (off >= size_) return;
    n = size_t(std::min<uint64_t>(n, size_ - off));
    Edit e{off, std::vector<uint8_t>(n)};
    if (pread(fd_, e.old.data(), n, off_t(off)) != ssize_t(n)) return;
    if (pwrite(fd_, p, n, off_t(off)) != ssize_t(n)) return;
    edits_.push_back(std::move(e));
  }
  void get(uint64_t off, void *p, size_t n) { (void)!pread(fd_, p, n, off_t(off)); }
  void undo() {
    for (auto it = edits_.rbegin(); it != edits_.rend(); ++it) (void)!pwrite(fd_, it->old.data(), it->old.size(), off_t(it->off));
    edits_.clear();
  }
  // Recomputes every sum the header records, where the section lies in the file.
  void reseal(uint64_t file_size) {
    uint8_t h[sn::kHeaderBytes];
    get(0, h, sizeof h);
    uint32_t count = 0;
    std::memcpy(&count, h + sn::kOffSections, 4);
    for (uint32_t i = 0; i < std::min(count, sn::kMaxSections); i++) {
      uint8_t *e = h + sn::kOffTable + sn::kTableEntry * i;
      uint32_t type;
      uint64_t off, len;
      std::memcpy(&type, e, 4);
      std::memcpy(&off, e + 8, 8);
      std::memcpy(&len, e + 16, 8);
      if (off > file_size || len > file_size - off) continue;
      uint32_t crc = 0;
      if (type == sn::kMeta && len <= sn::kMaxMeta) {
        std::vector<uint8_t> b(len);
        get(off, b.data(), len);
        crc = crc32c(0, b.data(), len);
      } else {
        try {
          crc = sn::memory_sum(fd_, off, len);
        } catch (const VmmError &) {
          continue;
        }
      }
      std::memcpy(e + 4, &crc, 4);
    }
    uint32_t hs = sn::header_sum(h);
    std::memcpy(h + sn::kOffHeaderCrc, &hs, 4);
    put(0, h, sizeof h);
  }

 private:
  int fd_;
  uint64_t size_;
  std::vector<Edit> edits_;
};

// A copy of `src` (data pages only, so it stays sparse), `len` bytes long.
void copy_prefix(const std::string &src, const std::string &dst, uint64_t len) {
  int in = open(src.c_str(), O_RDONLY | O_CLOEXEC), out = open(dst.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in < 0 || out < 0) {
    perror("copy");
    exit(2);
  }
  (void)!ftruncate(out, off_t(len));
  std::vector<uint8_t> buf(1 << 20);
  off_t pos = 0;
  while (uint64_t(pos) < len) {
    off_t d = lseek(in, pos, SEEK_DATA);
    if (d < 0 || uint64_t(d) >= len) break;
    off_t h = lseek(in, d, SEEK_HOLE);
    if (h < 0 || uint64_t(h) > len) h = off_t(len);
    for (off_t at = d; at < h;) {
      ssize_t r = pread(in, buf.data(), size_t(std::min<off_t>(off_t(buf.size()), h - at)), at);
      if (r <= 0) break;
      (void)!pwrite(out, buf.data(), size_t(r), at);
      at += r;
    }
    pos = h;
  }
  close(in);
  close(out);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 5 || (strcmp(argv[1], "master") && strcmp(argv[1], "backend"))) {
    fprintf(stderr, "usage: farcall-snapfuzz master|backend SNAPSHOT ITERATIONS SEED\n");
    return 2;
  }
  bool master = !strcmp(argv[1], "master");
  std::string orig = argv[2], work = orig + ".fuzz", cut = orig + ".cut";
  long iterations = atol(argv[3]);
  std::mt19937_64 rng(std::stoull(argv[4]));
  signal(SIGALRM, on_alarm);
  copy_prefix(orig, work, [&] {
    struct stat st;
    return stat(orig.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  }());
  int fd = open(work.c_str(), O_RDWR | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < off_t(sn::kHeaderBytes)) {
    fprintf(stderr, "cannot read %s\n", orig.c_str());
    return 2;
  }
  uint64_t size = uint64_t(st.st_size);
  // Where the META and the memory pages with data are: mutations aim there.
  uint8_t h0[sn::kHeaderBytes];
  (void)!pread(fd, h0, sizeof h0, 0);
  uint64_t meta_off = 0, meta_len = 0;
  std::vector<uint64_t> data_pages;
  for (uint32_t i = 0; i < sn::kMaxSections; i++) {
    const uint8_t *e = h0 + sn::kOffTable + sn::kTableEntry * i;
    uint32_t type;
    uint64_t off, len;
    std::memcpy(&type, e, 4);
    std::memcpy(&off, e + 8, 8);
    std::memcpy(&len, e + 16, 8);
    if (type == sn::kMeta) meta_off = off, meta_len = len;
    if (type == sn::kRam || type == sn::kServe || type == sn::kInstance)
      for (off_t d = lseek(fd, off_t(off), SEEK_DATA); d >= 0 && uint64_t(d) < off + len && data_pages.size() < 4096;
           d = lseek(fd, d + 4096, SEEK_DATA))
        data_pages.push_back(uint64_t(d) & ~uint64_t(4095));
  }
  if (!meta_len) {
    fprintf(stderr, "%s has no META section\n", orig.c_str());
    return 2;
  }
  const uint64_t interesting[] = {0, 1, 4095, 4096, ~0ull, 1ull << 63, 0x7fffffffffffull, size, size - 1, size + 4096,
                                  0x10000000000ull, 0xffffffffull};
  std::map<std::string, long> outcomes;
  Work w(fd, size);
  for (long it = 0; it < iterations; it++) {
    g_iteration = int(it);
    alarm(10);
    std::string path = work;
    unsigned kind = unsigned(rng() % 20);
    bool reseal = rng() & 1;
    if (kind == 0) {  // truncated (or extended) copy, its header's size patched half the time
      uint64_t len = rng() % (size + 8192);
      copy_prefix(work, cut, len);
      if (reseal && len >= sn::kHeaderBytes) {
        int cfd = open(cut.c_str(), O_RDWR | O_CLOEXEC);
        Work c(cfd, len);
        c.put(sn::kOffFileSize, &len, 8);
        c.reseal(len);
        close(cfd);
      }
      path = cut;
    } else {
      int edits = 1 + int(rng() % 8);
      for (int e = 0; e < edits; e++) {
        unsigned where = unsigned(rng() % 10);
        uint64_t off;
        if (where < 3) off = rng() % sn::kOffTable + 0;                                    // header fields
        else if (where < 4) off = sn::kOffTable + rng() % (sn::kTableEntry * 8);          // section table
        else if (where < 8) off = meta_off + rng() % meta_len;                            // META
        else off = data_pages.empty() ? rng() % size : data_pages[rng() % data_pages.size()] + rng() % 4096;
        if (kind < 8 && where >= 3 && where < 8) {  // a whole word set to an interesting value
          uint64_t v = interesting[rng() % (sizeof interesting / sizeof interesting[0])];
          uint64_t base = where < 4 ? sn::kOffTable : meta_off;
          off = base + ((off - base) & ~uint64_t(3));
          w.put(off, &v, (rng() & 1) ? 8 : 4);
        } else {
          uint8_t b;
          w.get(off, &b, 1);
          b = (rng() & 1) ? uint8_t(b ^ (1u << (rng() % 8))) : uint8_t(rng());
          w.put(off, &b, 1);
        }
      }
      if (reseal) w.reseal(size);
    }
    sn::forget_verified();
    std::string outcome;
    try {
      if (master) {
        Master m(path, {});
        Fork f(m, 1024);
        RequestOutcome o = f.request(reinterpret_cast<const uint8_t *>("count"), 5, 1000000000ull);
        outcome = o.ok ? "loaded+served" : "loaded+request:" + (o.code.empty() ? "stopped" : o.code);
      } else {
        ProcessConfig cfg;
        cfg.mode = entry__resolve();
        Backend b(path, cfg, 1000000000ull, false, Durability::Call);
        outcome = "loaded";
      }
    } catch (const VmmError &e) {
      outcome = error_code__name(e.code());
    } catch (const std::exception &e) {
      fprintf(stderr, "iteration %ld: untyped error: %s\n", it, e.what());
      outcome = "UNTYPED";
    }
    outcomes[outcome]++;
    w.undo();
  }
  alarm(0);
  unlink(work.c_str());
  unlink(cut.c_str());
  printf("{\"iterations\":%ld", iterations);
  for (auto &[k, n] : outcomes) printf(",\"%s\":%ld", k.c_str(), n);
  printf("}\n");
  return outcomes.count("UNTYPED") ? 1 : 0;
}
