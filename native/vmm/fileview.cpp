#include "fileview.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace farcall {

namespace {
constexpr uint64_t kResolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

int openat2_(int dir, const char *path, uint64_t flags) {
  open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = flags | O_CLOEXEC;
  how.resolve = kResolve;
  for (;;) {
    long r = ::syscall(SYS_openat2, dir, path, &how, sizeof how);
    if (r >= 0 || errno != EAGAIN) return r < 0 ? -errno : int(r);  // EAGAIN: a rename raced; retry
  }
}

// The guest's path as the kernel should see it from the root: "" (the root itself) for "/".
std::string relative(const std::string &path) {
  size_t i = 0;
  while (i < path.size() && path[i] == '/') i++;
  return i == path.size() ? "." : path.substr(i);
}
}  // namespace

std::shared_ptr<FileView> FileView::open_root(const std::string &dir) {
  std::shared_ptr<FileView> v(new FileView());
  v->root_ = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (v->root_ < 0)
    throw VmmError(ErrorCode::BadState, "files.readOnly: cannot open directory " + dir + ": " + std::strerror(errno));
  return v;
}

std::shared_ptr<FileView> FileView::layer(std::shared_ptr<FileView> below) {
  std::shared_ptr<FileView> v(new FileView());
  v->root_ = below->root_;
  v->base_ = below->base_ + int(below->max_objects());  // ids never collide with below's
  v->total_ = below->total_;
  v->below_ = std::move(below);
  return v;
}

FileView::~FileView() {
  for (int fd : objects_) ::close(fd);
  *total_ -= objects_.size();
  if (root_ >= 0 && !below_) ::close(root_);
}

int FileView::host(int id) {
  if (id < base_) return below_ ? below_->host(id) : -1;
  std::lock_guard<std::mutex> lk(mu_);
  return size_t(id - base_) < objects_.size() ? objects_[size_t(id - base_)] : -1;
}

int FileView::find(std::pair<dev_t, ino_t> key) {
  if (below_)
    if (int id = below_->find(key); id >= 0) return id;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = by_inode_.find(key);
  return it == by_inode_.end() ? -1 : it->second;
}

int FileView::open(const std::string &path, bool follow, bool want_dir) {
  if (path.empty()) return -ENOENT;
  uint64_t flags = O_RDONLY | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW) | (want_dir ? O_DIRECTORY : 0);
  int fd = openat2_(root_, relative(path).c_str(), flags);
  if (fd == -EXDEV) fd = -ENOENT;  // another mount (e.g. /proc bound inside): not part of the view
  if (fd < 0) return fd;
  struct stat st;
  if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    ::close(fd);
    return -EACCES;  // devices, fifos and sockets in the directory are not part of the view
  }
  auto key = std::make_pair(st.st_dev, st.st_ino);
  if (int id = find(key); id >= 0) {
    ::close(fd);
    return id;
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (total_->fetch_add(1) >= max_objects()) {
    *total_ -= 1;
    ::close(fd);
    return -ENFILE;
  }
  objects_.push_back(fd);
  int id = base_ + int(objects_.size() - 1);
  by_inode_[key] = id;
  return id;
}

int FileView::stat_path(const std::string &path, bool follow, struct stat *st) {
  if (path.empty()) return -ENOENT;
  int fd = openat2_(root_, relative(path).c_str(), O_PATH | (follow ? 0 : O_NOFOLLOW));
  if (fd == -EXDEV) fd = -ENOENT;
  if (fd < 0) return fd;
  int r = fstat(fd, st) < 0 ? -errno : 0;
  ::close(fd);
  return r;
}

int FileView::stat(int id, struct stat *st) {
  int fd = host(id);
  if (fd < 0) return -EBADF;
  return fstat(fd, st) < 0 ? -errno : 0;
}

int64_t FileView::pread(int id, void *buf, uint64_t len, uint64_t off) {
  int fd = host(id);
  if (fd < 0) return -EBADF;
  ssize_t r = ::pread(fd, buf, len, off_t(off));
  return r < 0 ? -errno : r;
}

int64_t FileView::getdents(int id, void *buf, uint64_t len, uint64_t *pos) {
  if (id < base_) return below_ ? below_->getdents(id, buf, len, pos) : -EBADF;
  std::lock_guard<std::mutex> lk(mu_);  // the host fd's position is shared: seek and read as one
  if (size_t(id - base_) >= objects_.size()) return -EBADF;
  int fd = objects_[size_t(id - base_)];
  if (lseek(fd, off_t(*pos), SEEK_SET) < 0) return -errno;
  long r = ::syscall(SYS_getdents64, fd, buf, len);
  if (r < 0) return -errno;
  *pos = uint64_t(lseek(fd, 0, SEEK_CUR));
  return r;
}

int64_t FileView::readlink(const std::string &path, char *buf, uint64_t len) {
  int fd = openat2_(root_, relative(path).c_str(), O_PATH | O_NOFOLLOW);
  if (fd == -EXDEV) fd = -ENOENT;
  if (fd < 0) return fd;
  ssize_t r = readlinkat(fd, "", buf, len);  // the symlink the O_PATH fd names
  int e = errno;
  ::close(fd);
  return r < 0 ? -(e == ENOENT ? EINVAL : e) : r;
}

int64_t FileView::pread_all(int id, void *buf, uint64_t len, uint64_t off) {
  uint64_t done = 0;
  while (done < len) {
    int64_t r = pread(id, static_cast<uint8_t *>(buf) + done, len - done, off + done);
    if (r < 0) return done ? int64_t(done) : r;
    if (r == 0) break;
    done += uint64_t(r);
  }
  return int64_t(done);
}

int FileView::read_file(const std::string &path, uint64_t max, std::vector<uint8_t> *out) {
  int id = open(path, true, false);
  if (id < 0) return id;
  struct stat st;
  if (int r = stat(id, &st); r < 0) return r;
  if (!S_ISREG(st.st_mode)) return -EACCES;
  if (uint64_t(st.st_size) > max) return -EFBIG;
  out->resize(uint64_t(st.st_size));
  int64_t n = pread_all(id, out->data(), out->size(), 0);
  if (n < 0) return int(n);
  out->resize(uint64_t(n));
  return 0;
}

}  // namespace farcall
