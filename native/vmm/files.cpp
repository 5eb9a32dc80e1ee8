// System calls on paths: the read-only file view (fileview.h). Without a view configured the
// guest sees no files (ENOENT). Nothing here writes: opening for writing answers EROFS.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fileview.h"
#include "personality.h"

namespace farcall {

namespace {
uint64_t neg(int e) { return uint64_t(-int64_t(e)); }
uint64_t ret(int64_t r) { return r < 0 ? neg(int(-r)) : uint64_t(r); }
enum : uint64_t {
  NR_open = 2, NR_stat = 4, NR_lstat = 6, NR_access = 21, NR_readlink = 89, NR_getdents64 = 217, NR_openat = 257,
  NR_newfstatat = 262, NR_readlinkat = 267, NR_faccessat = 269, NR_statx = 332, NR_faccessat2 = 439,
};
constexpr int64_t kAtFdcwd = -100;
constexpr uint64_t kAtSymlinkNofollow = 0x100, kAtEmptyPath = 0x1000;

// struct stat as the x86-64 kernel lays it out, every byte set.
void to_guest_stat(const struct stat &st, uint8_t out[144]) {
  std::memset(out, 0, 144);
  uint64_t w[] = {st.st_dev, st.st_ino, st.st_nlink};
  std::memcpy(out, w, 24);
  uint32_t m[] = {st.st_mode, st.st_uid, st.st_gid};
  std::memcpy(out + 24, m, 12);
  int64_t v[] = {int64_t(st.st_rdev), st.st_size, st.st_blksize, st.st_blocks, st.st_atim.tv_sec, st.st_atim.tv_nsec,
                 st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
  std::memcpy(out + 40, v, sizeof v);
}

// struct statx (256 bytes) from a struct stat: the basic fields, which is what stat gives.
void to_guest_statx(const struct stat &st, uint8_t out[256]) {
  std::memset(out, 0, 256);
  uint32_t mask = 0x7ff;  // STATX_BASIC_STATS
  uint32_t blksize = uint32_t(st.st_blksize), nlink = uint32_t(st.st_nlink), uid = st.st_uid, gid = st.st_gid;
  uint16_t mode = uint16_t(st.st_mode);
  uint64_t ino = st.st_ino, size = uint64_t(st.st_size), blocks = uint64_t(st.st_blocks);
  std::memcpy(out + 0, &mask, 4);
  std::memcpy(out + 4, &blksize, 4);
  std::memcpy(out + 16, &nlink, 4);
  std::memcpy(out + 20, &uid, 4);
  std::memcpy(out + 24, &gid, 4);
  std::memcpy(out + 28, &mode, 2);
  std::memcpy(out + 32, &ino, 8);
  std::memcpy(out + 40, &size, 8);
  std::memcpy(out + 48, &blocks, 8);
  const timespec *ts[] = {&st.st_atim, nullptr, &st.st_ctim, &st.st_mtim};  // atime, btime, ctime, mtime
  for (int i = 0; i < 4; i++) {
    if (!ts[i]) continue;
    int64_t sec = ts[i]->tv_sec;
    uint32_t nsec = uint32_t(ts[i]->tv_nsec);
    std::memcpy(out + 64 + 16 * i, &sec, 8);
    std::memcpy(out + 72 + 16 * i, &nsec, 4);
  }
  uint32_t rmaj = major(st.st_rdev), rmin = minor(st.st_rdev), dmaj = major(st.st_dev), dmin = minor(st.st_dev);
  std::memcpy(out + 128, &rmaj, 4);
  std::memcpy(out + 132, &rmin, 4);
  std::memcpy(out + 136, &dmaj, 4);
  std::memcpy(out + 140, &dmin, 4);
}
}  // namespace

bool write_guest_stat(const GuestView &mem, uint64_t at, const struct stat &st, bool statx) {
  uint8_t b[256];
  if (statx) to_guest_statx(st, b);
  else to_guest_stat(st, b);
  return mem.write(at, b, statx ? 256 : 144);
}

// A NUL-terminated path from guest memory: 0, or a negative errno.
int Personality::guest_path(uint64_t at, std::string *out) {
  out->clear();
  for (uint64_t i = 0; i < 4096; i++) {
    const uint8_t *c = mem_.ptr(at + i, 1);
    if (!c) return -EFAULT;
    if (!*c) return 0;
    out->push_back(char(*c));
  }
  return -ENAMETOOLONG;
}

// The path `at` names relative to `dirfd` (AT_FDCWD: the guest's working directory).
int Personality::guest_path_at(int64_t dirfd, uint64_t at, std::string *out) {
  if (int r = guest_path(at, out); r < 0) return r;
  if (out->empty() || (*out)[0] == '/') return 0;
  if (dirfd == kAtFdcwd) {
    if (ms_.fds.cwd != "/") *out = ms_.fds.cwd + "/" + *out;  // resolved from the root like any path
    return 0;
  }
  const OpenFile *d = ms_.fds.file_of(int(dirfd));
  if (!d) return -EBADF;
  if (d->kind != OpenFile::ViewDir && d->kind != OpenFile::ScratchDir) return -ENOTDIR;
  *out = d->path + "/" + *out;  // resolved again from the root, inside it (fileview.h)
  return 0;
}

uint64_t Personality::file_open(const std::string &path, uint64_t flags) {
  if (!view_) return neg(ENOENT);
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) || (flags & O_TMPFILE) == O_TMPFILE) {
    struct stat st;
    int r = view_->stat_path(path, true, &st);
    if (r == -ENOENT && !(flags & O_CREAT)) return neg(ENOENT);
    return neg(r == 0 && S_ISDIR(st.st_mode) ? EISDIR : EROFS);  // a read-only file system
  }
  int id = view_->open(path, !(flags & O_NOFOLLOW), flags & O_DIRECTORY);
  if (id < 0) return neg(-id);
  struct stat st;
  if (int r = view_->stat(id, &st); r < 0) return neg(-r);
  OpenFile f;
  f.kind = S_ISDIR(st.st_mode) ? OpenFile::ViewDir : OpenFile::ViewFile;
  f.obj = id;
  f.flags = uint32_t(flags) & (O_NONBLOCK | O_DIRECTORY | O_NOATIME);
  if (f.kind == OpenFile::ViewDir) f.path = path;
  int fd = ms_.fds.install(f, flags & O_CLOEXEC, 0, [&](int x) { return sockets_.count(x) > 0; });
  return fd < 0 ? neg(EMFILE) : uint64_t(fd);
}

uint64_t Personality::file_read(OpenFile &f, uint64_t buf, uint64_t len, uint64_t *pos) {
  if (f.kind == OpenFile::ViewDir) return neg(EISDIR);
  uint8_t *p = mem_.ptr(buf, len);
  if (!p && len) return neg(EFAULT);
  int64_t r = view_->pread(f.obj, p, len, *pos);  // straight into guest memory: only file bytes land there
  if (r > 0) {
    mem_.mark(buf, uint64_t(r));
    *pos += uint64_t(r);
  }
  return ret(r);
}

uint64_t Personality::file_stat(const OpenFile &f, uint64_t out) {
  struct stat st;
  if (int r = view_->stat(f.obj, &st); r < 0) return neg(-r);
  return write_guest_stat(mem_, out, st, false) ? 0 : neg(EFAULT);
}

uint64_t Personality::file_lseek(OpenFile &f, int64_t off, int whence) {
  if (f.kind == OpenFile::ViewDir) {  // positions are the host's cookies: only what telldir gave back
    if (whence != SEEK_SET || off < 0) return neg(EINVAL);
    f.pos = uint64_t(off);
    return f.pos;
  }
  struct stat st;
  if (int r = view_->stat(f.obj, &st); r < 0) return neg(-r);
  int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? int64_t(f.pos) : whence == SEEK_END ? st.st_size : -1;
  if (base < 0 && whence != SEEK_SET) return neg(EINVAL);
  if (off < 0 ? base < -off : false) return neg(EINVAL);
  f.pos = uint64_t(base + off);
  return f.pos;
}

uint64_t Personality::file_mmap_copy(int fd, uint64_t at, uint64_t len, uint64_t off) {
  OpenFile *f = ms_.fds.file_of(fd);
  if (!f) return neg(EBADF);
  if (f->kind != OpenFile::ViewFile && f->kind != OpenFile::ScratchFile) return neg(ENODEV);
  uint8_t *p = mem_.ptr(at, len);
  if (!p) return neg(ENOMEM);
  int64_t r = f->kind == OpenFile::ScratchFile ? ms_.scratch.read(f->ino, p, len, off)  // a private copy
                                               : view_->pread_all(f->obj, p, len, off);  // the rest stays zero, as past a file's end
  if (r < 0) return neg(int(-r));
  mem_.mark(at, uint64_t(r));
  return at;
}

uint64_t Personality::file_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                               bool *handled) {
  *handled = true;
  std::string path;
  struct stat st;
  switch (nr) {
    case NR_open:
    case NR_openat: {
      int r = nr == NR_open ? guest_path_at(kAtFdcwd, a0, &path) : guest_path_at(int(a0), a1, &path);
      if (r < 0) return neg(-r);
      return file_open(path, nr == NR_open ? a1 : a2);
    }
    case NR_stat:
    case NR_lstat:
    case NR_newfstatat:
    case NR_statx: {
      bool at = nr == NR_newfstatat || nr == NR_statx;
      uint64_t flags = nr == NR_newfstatat ? a3 : nr == NR_statx ? a2 : 0;
      uint64_t out = nr == NR_statx ? a4 : at ? a2 : a1;
      int r = at ? guest_path_at(int(a0), a1, &path) : guest_path_at(kAtFdcwd, a0, &path);
      if (r < 0) return neg(-r);
      if (path.empty()) {  // AT_EMPTY_PATH: the fd itself
        if (!(flags & kAtEmptyPath)) return neg(ENOENT);
        const OpenFile *f = ms_.fds.file_of(int(a0));
        if (!f) return neg(EBADF);
        if (f->kind == OpenFile::ViewFile || f->kind == OpenFile::ViewDir) {
          if (int e = view_->stat(f->obj, &st); e < 0) return neg(-e);
        } else {
          std::memset(&st, 0, sizeof st);  // stdio, pipes: a fifo; eventfd/epoll: an anonymous inode
          bool fifo = f->kind != OpenFile::EventFd && f->kind != OpenFile::Epoll;
          st.st_mode = fifo ? S_IFIFO | 0600 : 0600;
          st.st_nlink = 1;
          st.st_blksize = 4096;
          st.st_ino = uint64_t(ms_.fds.fds.at(int(a0)).file) + 1;
        }
      } else {
        if (!view_) return neg(ENOENT);
        bool follow = nr != NR_lstat && !(flags & kAtSymlinkNofollow);
        if (int e = view_->stat_path(path, follow, &st); e < 0) return neg(-e);
      }
      return write_guest_stat(mem_, out, st, nr == NR_statx) ? 0 : neg(EFAULT);
    }
    case NR_access:
    case NR_faccessat:
    case NR_faccessat2: {
      int r = nr == NR_access ? guest_path_at(kAtFdcwd, a0, &path) : guest_path_at(int(a0), a1, &path);
      if (r < 0) return neg(-r);
      uint64_t mode = nr == NR_access ? a1 : a2;
      if (mode & ~uint64_t(7)) return neg(EINVAL);
      if (!view_) return neg(ENOENT);
      bool follow = !(nr == NR_faccessat2 && (a3 & kAtSymlinkNofollow));
      if (int e = view_->stat_path(path, follow, &st); e < 0) return neg(-e);
      if (mode & W_OK) return neg(EROFS);
      if ((mode & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111)) return neg(EACCES);
      return 0;
    }
    case NR_readlink:
    case NR_readlinkat: {
      int r = nr == NR_readlink ? guest_path_at(kAtFdcwd, a0, &path) : guest_path_at(int(a0), a1, &path);
      if (r < 0) return neg(-r);
      uint64_t buf = nr == NR_readlink ? a1 : a2, len = nr == NR_readlink ? a2 : a3;
      if (int64_t(len) <= 0) return neg(EINVAL);
      if (!view_) return neg(ENOENT);
      std::vector<char> b(std::min<uint64_t>(len, 4096));
      int64_t n = view_->readlink(path, b.data(), b.size());
      if (n < 0) return neg(int(-n));
      return mem_.write(buf, b.data(), uint64_t(n)) ? uint64_t(n) : neg(EFAULT);
    }
    case NR_getdents64: {
      OpenFile *f = ms_.fds.file_of(int(a0));
      if (!f) return neg(EBADF);
      if (f->kind != OpenFile::ViewDir) return neg(ENOTDIR);
      std::vector<uint8_t> b(std::min<uint64_t>(a2, 1 << 20), 0);
      uint64_t pos = f->pos;
      int64_t n = view_->getdents(f->obj, b.data(), b.size(), &pos);
      if (n < 0) return neg(int(-n));
      if (!mem_.write(a1, b.data(), uint64_t(n))) return neg(EFAULT);
      f->pos = pos;
      return uint64_t(n);
    }
    default:
      (void)a4;
      *handled = false;
      return 0;
  }
}

}  // namespace farcall
