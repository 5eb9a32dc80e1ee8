// System calls on the scratch directory (scratch.h), which overlays the read-only view at its
// mount path (ProcessConfig::scratch_path, "/tmp" by default).
//
// A guest path is made absolute (the working directory is "/", a directory fd gives its own
// path) and normalized by name: "." dropped, ".." takes off one component and never goes above
// "/". Because nothing in the scratch tree is a link, that is exactly what Linux would resolve
// inside it; paths that end up under the mount path are the tree's, every other path goes on
// to the view (files.cpp), whose kernel-side resolution keeps it inside the view's root. So
// ".." climbs out of the scratch directory only into the read-only view, never further. A
// symlink of the view that points at the mount path is followed inside the view (it does not
// lead into the scratch directory).
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "personality.h"

namespace farcall {

namespace {
uint64_t neg(int e) { return uint64_t(-int64_t(e)); }
uint64_t ret(int64_t r) { return r < 0 ? neg(int(-r)) : uint64_t(r); }
enum : uint64_t {
  NR_open = 2, NR_stat = 4, NR_fstat = 5, NR_lstat = 6, NR_lseek = 8, NR_pread64 = 17,
  NR_pwrite64 = 18, NR_access = 21, NR_fsync = 74, NR_fdatasync = 75, NR_truncate = 76, NR_ftruncate = 77,
  NR_rename = 82, NR_mkdir = 83, NR_rmdir = 84, NR_creat = 85, NR_link = 86, NR_unlink = 87, NR_symlink = 88,
  NR_readlink = 89, NR_chmod = 90, NR_fchmod = 91, NR_chown = 92, NR_fchown = 93, NR_lchown = 94,
  NR_getdents64 = 217, NR_fadvise64 = 221, NR_openat = 257, NR_mkdirat = 258, NR_fchownat = 260,
  NR_newfstatat = 262, NR_unlinkat = 263, NR_renameat = 264, NR_linkat = 265, NR_symlinkat = 266,
  NR_readlinkat = 267, NR_fchmodat = 268, NR_faccessat = 269, NR_utimensat = 280, NR_fallocate = 285,
  NR_renameat2 = 316, NR_statx = 332, NR_faccessat2 = 439, NR_chdir = 80, NR_fchdir = 81,
};
constexpr int64_t kAtFdcwd = -100;
constexpr uint64_t kAtRemovedir = 0x200, kAtEmptyPath = 0x1000, kRenameNoreplace = 1;
constexpr uint64_t kScratchDev = 0x2a;  // st_dev of every scratch file: its own file system
bool is_scratch(const OpenFile *f) { return f && (f->kind == OpenFile::ScratchFile || f->kind == OpenFile::ScratchDir); }

// "/a/./b/../c" -> {"a", "c"}; ".." at "/" stays at "/".
std::vector<std::string> components(const std::string &path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    if (c == "..") {
      if (!out.empty()) out.pop_back();
    } else if (!c.empty() && c != ".") {
      out.push_back(c);
    }
    i = j + 1;
  }
  return out;
}
}  // namespace

// A guest path, made absolute and normalized, and whether it lies in the scratch directory.
struct Personality::ScratchPath {
  bool inside = false;
  std::vector<std::string> rest;  // inside: the components below the mount path
  bool slash = false;             // the path ended in "/" (it must name a directory)
  std::string full;               // normalized, from "/"
};

int Personality::scratch_path(int64_t dirfd, uint64_t at, ScratchPath *out) {
  std::string raw;
  if (int r = guest_path_at(dirfd, at, &raw); r < 0) return r;
  if (raw.empty()) return -ENOENT;
  std::vector<std::string> c = components(raw);
  out->slash = raw.back() == '/';
  out->full.clear();
  for (auto &s : c) out->full += "/" + s;
  if (out->full.empty()) out->full = "/";
  out->inside = false;
  out->rest.clear();
  if (!cfg_.scratch_bytes) return 0;
  std::vector<std::string> mount = components(cfg_.scratch_path);
  if (c.size() < mount.size() || !std::equal(mount.begin(), mount.end(), c.begin())) return 0;
  out->inside = true;
  out->rest.assign(c.begin() + long(mount.size()), c.end());
  for (auto &s : out->rest)
    if (s.size() > ScratchFs::kMaxName) return -ENAMETOOLONG;
  return 0;
}

uint64_t Personality::scratch_stat_out(uint64_t ino, uint64_t out, bool statx) {
  ScratchStat s;
  if (int r = ms_.scratch.stat(ino, &s); r < 0) return neg(-r);
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_dev = kScratchDev;
  st.st_ino = s.ino;
  st.st_nlink = s.nlink;
  st.st_mode = s.mode;
  st.st_size = int64_t(s.size);
  st.st_blksize = ScratchFs::kPage;
  st.st_blocks = int64_t(s.blocks);
  st.st_mtim = {time_t(s.mtime_ns / 1000000000), long(s.mtime_ns % 1000000000)};
  st.st_atim = st.st_mtim;
  st.st_ctim = {time_t(s.ctime_ns / 1000000000), long(s.ctime_ns % 1000000000)};
  return write_guest_stat(mem_, out, st, statx) ? 0 : neg(EFAULT);
}

uint64_t Personality::scratch_rw(OpenFile &f, uint64_t buf, uint64_t len, uint64_t *pos, bool write) {
  if (f.kind == OpenFile::ScratchDir) return neg(EISDIR);
  if (f.access == (write ? O_RDONLY : O_WRONLY)) return neg(EBADF);  // not open for that
  uint8_t *p = mem_.ptr(buf, len);
  if (!p && len) return neg(EFAULT);
  if (!write) {
    int64_t r = ms_.scratch.read(f.ino, p, len, *pos);  // straight into guest memory
    if (r > 0) {
      mem_.mark(buf, uint64_t(r));
      *pos += uint64_t(r);
    }
    return ret(r);
  }
  if (ms_.scratch.has_orphans()) {  // files unlinked and since closed give their pages back first
    std::set<uint64_t> open;
    for (auto &[id, o] : ms_.fds.files)
      if (o.kind == OpenFile::ScratchFile) open.insert(o.ino);
    ms_.scratch.collect(open);
  }
  if (f.flags & O_APPEND) {
    ScratchStat s;
    ms_.scratch.stat(f.ino, &s);
    *pos = s.size;
  }
  int64_t r = ms_.scratch.write(f.ino, p, len, *pos, cfg_.scratch_bytes / ScratchFs::kPage);
  if (r > 0) *pos += uint64_t(r);
  return ret(r);
}

uint64_t Personality::scratch_open(const ScratchPath &p, uint64_t flags, uint64_t mode) {
  if ((flags & O_TMPFILE) == O_TMPFILE) return neg(EOPNOTSUPP);
  uint64_t acc = flags & O_ACCMODE;
  if (acc == O_ACCMODE) return neg(EINVAL);
  int64_t ino = ms_.scratch.lookup(p.rest);
  if (ino == -ENOENT && (flags & O_CREAT)) {
    if (p.slash) return neg(EISDIR);
    std::vector<std::string> up(p.rest.begin(), p.rest.end() - 1);
    int64_t dir = ms_.scratch.lookup(up);
    if (dir < 0) return neg(int(-dir));
    if (!ms_.scratch.is_dir(uint64_t(dir))) return neg(ENOTDIR);
    ino = ms_.scratch.create(uint64_t(dir), p.rest.back(), uint32_t(mode) & ~ms_.fds.umask, false);
  } else if (ino >= 0 && (flags & O_CREAT) && (flags & O_EXCL)) {
    return neg(EEXIST);
  }
  if (ino < 0) return neg(int(-ino));
  OpenFile f;
  f.ino = uint64_t(ino);
  f.access = uint32_t(acc);
  f.flags = uint32_t(flags) & (O_NONBLOCK | O_APPEND | O_DIRECT | O_NOATIME | O_DIRECTORY);
  if (ms_.scratch.is_dir(f.ino)) {
    if (acc != O_RDONLY || (flags & O_CREAT)) return neg(EISDIR);
    f.kind = OpenFile::ScratchDir;
    f.path = p.full;
  } else {
    if ((flags & O_DIRECTORY) || p.slash) return neg(ENOTDIR);
    f.kind = OpenFile::ScratchFile;
    if ((flags & O_TRUNC) && acc != O_RDONLY)
      if (int r = ms_.scratch.truncate(f.ino, 0, 0); r < 0) return neg(-r);
  }
  int fd = ms_.fds.install(f, flags & O_CLOEXEC, 0, [&](int x) { return sockets_.count(x) > 0; });
  return fd < 0 ? neg(EMFILE) : uint64_t(fd);
}

// A call on an open scratch file or directory (read/write and readv/writev go through fds.cpp).
uint64_t Personality::scratch_fd_call(uint64_t nr, OpenFile &f, uint64_t a1, uint64_t a2, uint64_t a3) {
  bool dir = f.kind == OpenFile::ScratchDir;
  switch (nr) {
    case NR_pread64:
    case NR_pwrite64: {
      if (int64_t(a3) < 0) return neg(EINVAL);
      uint64_t pos = a3;
      return scratch_rw(f, a1, a2, &pos, nr == NR_pwrite64);
    }
    case NR_lseek: {
      if (dir) {  // a position is an entry index (scratch.h)
        if (a2 != SEEK_SET || int64_t(a1) < 0) return neg(EINVAL);
        return f.pos = a1;
      }
      ScratchStat s;
      ms_.scratch.stat(f.ino, &s);
      int64_t off = int64_t(a1), base;
      switch (a2) {
        case SEEK_SET: base = 0; break;
        case SEEK_CUR: base = int64_t(f.pos); break;
        case SEEK_END: base = int64_t(s.size); break;
        case SEEK_DATA:  // holes are not reported: all of the file is data
        case SEEK_HOLE:
          if (off < 0 || uint64_t(off) >= s.size) return neg(ENXIO);
          return f.pos = a2 == SEEK_DATA ? uint64_t(off) : s.size;
        default: return neg(EINVAL);
      }
      int64_t to;  // past INT64_MAX or below 0: EINVAL, as Linux (a wrapped one read as -errno)
      if (__builtin_add_overflow(base, off, &to) || to < 0) return neg(EINVAL);
      return f.pos = uint64_t(to);
    }
    case NR_fstat: return scratch_stat_out(f.ino, a1, false);
    case NR_ftruncate:
    case NR_fallocate: {
      if (dir) return neg(EISDIR);
      if (f.access == O_RDONLY) return neg(nr == NR_ftruncate ? EINVAL : EBADF);
      ScratchStat s;
      ms_.scratch.stat(f.ino, &s);
      if (nr == NR_fallocate) {  // only growing (mode 0): the new part reads as zero
        if (a1 != 0) return neg(EOPNOTSUPP);
        if (int64_t(a2) < 0 || int64_t(a3) <= 0) return neg(EINVAL);
        if (a2 + a3 <= s.size) return 0;
        a1 = a2 + a3;
      }
      if (int64_t(a1) < 0) return neg(EINVAL);
      return ret(ms_.scratch.truncate(f.ino, a1, cfg_.scratch_bytes / ScratchFs::kPage));
    }
    case NR_fsync:
    case NR_fdatasync:
    case NR_fadvise64:
    case NR_fchown: return 0;  // nothing below to sync; one user
    case NR_fchmod: return ret(ms_.scratch.chmod(f.ino, uint32_t(a1)));
    case NR_getdents64: {
      if (!dir) return neg(ENOTDIR);
      std::vector<uint8_t> b(std::min<uint64_t>(a2, 1 << 20), 0);
      uint64_t pos = f.pos;
      int64_t n = ms_.scratch.getdents(f.ino, b.data(), b.size(), &pos);
      if (n < 0) return neg(int(-n));
      if (!mem_.write(a1, b.data(), uint64_t(n))) return neg(EFAULT);
      f.pos = pos;
      return uint64_t(n);
    }
  }
  return neg(ENOSYS);
}

// A call on a path: answered here when the path is in the scratch directory (or is a change,
// which the read-only view refuses); *handled = false sends the others to files.cpp.
uint64_t Personality::scratch_path_call(uint64_t nr, const uint64_t a[5], bool *handled) {
  // Where the path (and for rename the second one) is: dirfd, pointer.
  int64_t dirfd = kAtFdcwd, dirfd2 = kAtFdcwd;
  uint64_t at = a[0], at2 = 0;
  switch (nr) {
    case NR_openat: case NR_newfstatat: case NR_statx: case NR_faccessat: case NR_faccessat2: case NR_readlinkat:
    case NR_mkdirat: case NR_unlinkat: case NR_fchmodat: case NR_fchownat: case NR_utimensat:
      dirfd = int64_t(int(a[0]));
      at = a[1];
      break;
    case NR_rename: at2 = a[1]; break;
    case NR_renameat:
    case NR_renameat2:
      dirfd = int64_t(int(a[0]));
      at = a[1];
      dirfd2 = int64_t(int(a[2]));
      at2 = a[3];
      break;
    case NR_link:
    case NR_symlink: at = a[1]; break;  // the new name
    case NR_linkat: dirfd = int64_t(int(a[2])); at = a[3]; break;
    case NR_symlinkat: dirfd = int64_t(int(a[1])); at = a[2]; break;
  }
  if (nr == NR_utimensat && !at) return *handled = false, 0;  // futimens: the fd's own file
  ScratchPath p, q;
  if (int r = scratch_path(dirfd, at, &p); r < 0) {
    if (r == -ENOENT && (nr == NR_newfstatat || nr == NR_statx)) return *handled = false, 0;  // AT_EMPTY_PATH
    return neg(-r);
  }
  bool two = nr == NR_rename || nr == NR_renameat || nr == NR_renameat2;
  if (two) {
    if (int r = scratch_path(dirfd2, at2, &q); r < 0) return neg(-r);
    if (p.inside != q.inside) return neg(EXDEV);
  }
  if (!p.inside) {  // the view's, or a change the read-only view refuses
    bool change = nr == NR_mkdir || nr == NR_mkdirat || nr == NR_rmdir || nr == NR_unlink || nr == NR_unlinkat ||
                  two || nr == NR_truncate || nr == NR_chmod || nr == NR_fchmodat || nr == NR_chown ||
                  nr == NR_lchown || nr == NR_fchownat || nr == NR_link || nr == NR_linkat || nr == NR_symlink ||
                  nr == NR_symlinkat || nr == NR_utimensat;
    if (!change) return *handled = false, 0;
    return neg(view_ ? EROFS : ENOENT);
  }
  // The directory holding the last component, and that component.
  auto parent = [&](const ScratchPath &x, std::string *name) -> int64_t {
    if (x.rest.empty()) return -EBUSY;  // the mount point itself
    *name = x.rest.back();
    int64_t d = ms_.scratch.lookup(std::vector<std::string>(x.rest.begin(), x.rest.end() - 1));
    if (d >= 0 && !ms_.scratch.is_dir(uint64_t(d))) return -ENOTDIR;
    return d;
  };
  auto existing = [&]() -> int64_t {
    int64_t ino = ms_.scratch.lookup(p.rest);
    if (ino >= 0 && p.slash && !ms_.scratch.is_dir(uint64_t(ino))) return -ENOTDIR;
    return ino;
  };
  std::string name, name2;
  int64_t ino;
  switch (nr) {
    case NR_open: return scratch_open(p, a[1], a[2]);
    case NR_openat: return scratch_open(p, a[2], a[3]);
    case NR_creat: return scratch_open(p, O_CREAT | O_WRONLY | O_TRUNC, a[1]);
    case NR_stat:
    case NR_lstat:
    case NR_newfstatat:
    case NR_statx:
      if ((ino = existing()) < 0) return neg(int(-ino));
      return scratch_stat_out(uint64_t(ino), nr == NR_statx ? a[4] : nr == NR_newfstatat ? a[2] : a[1], nr == NR_statx);
    case NR_access:
    case NR_faccessat:
    case NR_faccessat2: {
      uint64_t mode = nr == NR_access ? a[1] : a[2];
      if (mode & ~uint64_t(7)) return neg(EINVAL);
      if ((ino = existing()) < 0) return neg(int(-ino));
      ScratchStat s;
      ms_.scratch.stat(uint64_t(ino), &s);
      if ((mode & X_OK) && !S_ISDIR(s.mode) && !(s.mode & 0111)) return neg(EACCES);
      return 0;
    }
    case NR_readlink:
    case NR_readlinkat:
      if ((ino = existing()) < 0) return neg(int(-ino));
      return neg(EINVAL);  // nothing here is a link
    case NR_link:
    case NR_linkat:
    case NR_symlink:
    case NR_symlinkat: return neg(EPERM);  // no links: a path here means what it says
    case NR_mkdir:
    case NR_mkdirat: {
      if ((ino = parent(p, &name)) < 0) return neg(ino == -EBUSY ? EEXIST : int(-ino));
      int64_t r = ms_.scratch.create(uint64_t(ino), name, uint32_t(nr == NR_mkdir ? a[1] : a[2]) & ~ms_.fds.umask, true);
      return r < 0 ? neg(int(-r)) : 0;
    }
    case NR_rmdir:
    case NR_unlink:
    case NR_unlinkat: {
      bool dir = nr == NR_rmdir || (nr == NR_unlinkat && (a[2] & kAtRemovedir));
      if (nr == NR_unlinkat && (a[2] & ~kAtRemovedir)) return neg(EINVAL);
      if ((ino = parent(p, &name)) < 0) return neg(ino == -EBUSY && !dir ? EISDIR : int(-ino));
      if (p.slash && !dir) {
        int64_t t = ms_.scratch.lookup(p.rest);
        if (t >= 0 && !ms_.scratch.is_dir(uint64_t(t))) return neg(ENOTDIR);
      }
      return ret(ms_.scratch.remove(uint64_t(ino), name, dir));
    }
    case NR_rename:
    case NR_renameat:
    case NR_renameat2: {
      uint64_t flags = nr == NR_renameat2 ? a[4] : 0;
      if (flags & ~kRenameNoreplace) return neg(EINVAL);  // RENAME_EXCHANGE, RENAME_WHITEOUT: not here
      int64_t from = parent(p, &name), to = parent(q, &name2);
      if (from < 0) return neg(int(-from));
      if (to < 0) return neg(int(-to));
      return ret(ms_.scratch.rename(uint64_t(from), name, uint64_t(to), name2, flags & kRenameNoreplace));
    }
    case NR_truncate:
      if ((ino = existing()) < 0) return neg(int(-ino));
      if (int64_t(a[1]) < 0) return neg(EINVAL);
      return ret(ms_.scratch.truncate(uint64_t(ino), a[1], cfg_.scratch_bytes / ScratchFs::kPage));
    case NR_chmod:
    case NR_fchmodat:
      if ((ino = existing()) < 0) return neg(int(-ino));
      return ret(ms_.scratch.chmod(uint64_t(ino), uint32_t(nr == NR_chmod ? a[1] : a[2])));
    case NR_chown:
    case NR_lchown:
    case NR_fchownat:
    case NR_utimensat:  // times are the last change's; one user
      if ((ino = existing()) < 0) return neg(int(-ino));
      return 0;
  }
  return *handled = false, 0;
}

uint64_t Personality::scratch_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                  bool *handled) {
  *handled = true;
  switch (nr) {
    case NR_chdir:
    case NR_fchdir: {  // the working directory is a path, checked to be a directory now
      ScratchPath p;
      const OpenFile *f = nr == NR_fchdir ? ms_.fds.file_of(int(a0)) : nullptr;
      if (nr == NR_fchdir) {
        if (!f) return neg(EBADF);
        if (f->kind != OpenFile::ViewDir && f->kind != OpenFile::ScratchDir) return neg(ENOTDIR);
        p.full.clear();
        for (auto &c : components(f->path)) p.full += "/" + c;
        if (p.full.empty()) p.full = "/";
      } else {
        if (int r = scratch_path(kAtFdcwd, a0, &p); r < 0) return neg(-r);
        struct stat st;
        int64_t ino = p.inside ? ms_.scratch.lookup(p.rest) : -ENOENT;
        if (p.inside && ino < 0) return neg(int(-ino));
        if (p.inside ? !ms_.scratch.is_dir(uint64_t(ino)) : false) return neg(ENOTDIR);
        if (!p.inside && p.full != "/") {  // "/" is always there, with or without a view
          if (!view_) return neg(ENOENT);
          if (int e = view_->stat_path(p.full, true, &st); e < 0) return neg(-e);
          if (!S_ISDIR(st.st_mode)) return neg(ENOTDIR);
        }
      }
      ms_.fds.cwd = p.full;
      return 0;
    }
    case NR_lseek: case NR_pread64: case NR_pwrite64: case NR_fstat: case NR_ftruncate: case NR_fallocate:
    case NR_fsync: case NR_fdatasync: case NR_fadvise64: case NR_fchown: case NR_fchmod: case NR_getdents64: {
      OpenFile *f = ms_.fds.file_of(int(a0));
      if (!is_scratch(f)) break;
      return scratch_fd_call(nr, *f, a1, a2, a3);
    }
    case NR_newfstatat:
    case NR_statx: {  // AT_EMPTY_PATH on a scratch fd
      uint64_t flags = nr == NR_statx ? a2 : a3;
      const uint8_t *c = mem_.ptr(a1, 1);
      OpenFile *f = ms_.fds.file_of(int(a0));
      if ((flags & kAtEmptyPath) && c && !*c && is_scratch(f))
        return scratch_stat_out(f->ino, nr == NR_statx ? a4 : a2, nr == NR_statx);
      [[fallthrough]];
    }
    case NR_open: case NR_stat: case NR_lstat: case NR_access: case NR_truncate: case NR_rename: case NR_mkdir:
    case NR_rmdir: case NR_creat: case NR_link: case NR_unlink: case NR_symlink: case NR_readlink: case NR_chmod:
    case NR_chown: case NR_lchown: case NR_openat: case NR_mkdirat: case NR_fchownat: case NR_unlinkat:
    case NR_renameat: case NR_linkat: case NR_symlinkat: case NR_readlinkat: case NR_fchmodat: case NR_faccessat:
    case NR_utimensat: case NR_renameat2: case NR_faccessat2: {
      const uint64_t a[5] = {a0, a1, a2, a3, a4};
      return scratch_path_call(nr, a, handled);
    }
  }
  *handled = false;
  return 0;
}

}  // namespace farcall
