// System calls on the guest's file descriptors (fdtable.h): read/write and friends on stdio,
// pipes and eventfds, dup*, fcntl, poll/ppoll and epoll. Sockets (net.cpp) are host fds: the
// calls that concern one socket fall through to net_syscall; poll and epoll ask the host.
//
// A guest has one thread of control, so a call that would wait for another thread of the
// guest (reading an empty pipe whose writer is the guest itself) would wait forever: it stops
// the program with a "deadlock" fault instead. Waits on sockets and timed waits are real.
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "personality.h"

namespace farcall {

namespace {
uint64_t neg(int e) { return uint64_t(-int64_t(e)); }
enum : uint64_t {
  NR_read = 0, NR_write = 1, NR_close = 3, NR_fstat = 5, NR_poll = 7, NR_lseek = 8, NR_ioctl = 16,
  NR_pread64 = 17, NR_pwrite64 = 18, NR_readv = 19, NR_writev = 20, NR_pipe = 22, NR_dup = 32, NR_dup2 = 33,
  NR_fcntl = 72, NR_epoll_create = 213, NR_epoll_wait = 232, NR_epoll_ctl = 233, NR_ppoll = 271,
  NR_epoll_pwait = 281, NR_eventfd = 284, NR_eventfd2 = 290, NR_epoll_create1 = 291, NR_dup3 = 292,
  NR_pipe2 = 293, NR_close_range = 436, NR_epoll_pwait2 = 441,
};
constexpr uint32_t kInEvents = POLLIN | POLLRDNORM, kOutEvents = POLLOUT | POLLWRNORM;
// Flags a guest passes that farcall keeps (O_NONBLOCK) or accepts without meaning (O_DIRECT).
constexpr uint32_t kStatusFlags = O_NONBLOCK | O_APPEND | O_DIRECT | O_ASYNC | O_NOATIME;

// Milliseconds from a timespec at `ts` (null: forever, -1); false if it cannot be read or is invalid.
bool timeout_ms(const GuestView &mem, uint64_t at, int64_t *ms) {
  if (!at) {
    *ms = -1;
    return true;
  }
  timespec ts;
  if (!mem.read(&ts, at, sizeof ts) || ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000) return false;
  *ms = ts.tv_sec > 1000000000 ? 1000000000000ll : ts.tv_sec * 1000 + (ts.tv_nsec + 999999) / 1000000;
  return true;
}
}  // namespace

bool Personality::fd_deadlock(Stop *stop, const char *what) {
  if (thread_retry()) return true;  // another guest thread may end the wait
  stop->kind = Stop::Fault;
  stop->event = Event{};
  stop->event.kind = Event::Unexpected;
  stop->event.rip = cpu_ ? cpu_->regs().rcx : 0;  // where the `syscall` returns to
  stop->event.detail = std::string("deadlock: ") + what + " would wait forever (nothing else in the guest can end the wait)";
  return true;
}

uint32_t Personality::fd_ready(int fd) {
  if (int h = host_fd(fd); h >= 0) {
    pollfd p = {h, POLLIN | POLLOUT | POLLPRI | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) < 0 ? 0 : uint32_t(p.revents);
  }
  const OpenFile *f = ms_.fds.file_of(fd);
  if (!f) return POLLNVAL;
  switch (f->kind) {
    case OpenFile::Stdin: return kInEvents;  // like a file: a read never waits (at the end it returns 0)
    case OpenFile::Stdout:
    case OpenFile::Stderr: return kOutEvents;
    case OpenFile::ViewFile:
    case OpenFile::ViewDir:
    case OpenFile::ScratchFile:
    case OpenFile::ScratchDir: return kInEvents | kOutEvents;  // files never make a reader wait
    case OpenFile::PipeRead: {
      const Pipe &p = ms_.fds.pipes.at(f->pipe);
      return (p.buf.empty() ? 0 : kInEvents) | (p.writers ? 0 : POLLHUP);
    }
    case OpenFile::PipeWrite: {
      const Pipe &p = ms_.fds.pipes.at(f->pipe);
      return p.readers == 0 ? POLLERR : p.buf.size() < FdTable::kPipeBytes ? kOutEvents : 0;
    }
    case OpenFile::EventFd: return (f->count ? kInEvents : 0) | (f->count < ~0ull - 1 ? kOutEvents : 0);
    case OpenFile::Epoll:
      for (auto &[wfd, w] : f->watches) {
        const OpenFile *wf = ms_.fds.file_of(wfd);
        if (wf && wf->kind == OpenFile::Epoll) continue;  // nested sets are never ready (no recursion)
        if (fd_ready(wfd) & (w.events | POLLERR | POLLHUP)) return kInEvents;
      }
      return 0;
  }
  return 0;
}

// Waits until one of `sockets` (host fds) is ready or `ms` passes (-1: no limit). Returns
// false, with a deadlock stop, when nothing could ever end the wait.
bool Personality::fd_wait(const std::vector<int> &sockets, int64_t ms, Stop *stop, const char *what) {
  if (ms == 0) return true;
  if (sockets.empty()) {
    if (ms < 0) return !fd_deadlock(stop, what);
    timespec ts = {time_t(ms / 1000), long(ms % 1000) * 1000000};
    nanosleep(&ts, nullptr);  // the timeout watchdog interrupts this too
    return true;
  }
  std::vector<pollfd> ps;
  for (int h : sockets) ps.push_back({h, POLLIN | POLLOUT | POLLPRI | POLLRDHUP, 0});
  ::poll(ps.data(), ps.size(), ms > 0x7fffffff ? -1 : int(ms));
  return true;
}

uint64_t Personality::fd_read(int fd, uint64_t buf, uint64_t len, Stop *stop) {
  OpenFile *f = ms_.fds.file_of(fd);
  if (!f) return neg(EBADF);
  switch (f->kind) {
    case OpenFile::Stdin: return sys_read(0, buf, len);
    case OpenFile::ViewFile:
    case OpenFile::ViewDir: return file_read(*f, buf, len, &f->pos);
    case OpenFile::ScratchFile:
    case OpenFile::ScratchDir: return scratch_rw(*f, buf, len, &f->pos, false);
    case OpenFile::PipeRead: {
      Pipe &p = ms_.fds.pipes.at(f->pipe);
      if (p.buf.empty()) {
        if (!p.writers || !len) return 0;
        if (f->flags & O_NONBLOCK) return neg(EAGAIN);
        fd_deadlock(stop, "read from an empty pipe");
        return neg(EINTR);
      }
      uint64_t n = std::min<uint64_t>(len, p.buf.size());
      if (!mem_.write(buf, p.buf.data(), n)) return neg(EFAULT);
      p.buf.erase(0, n);
      return n;
    }
    case OpenFile::EventFd: {
      if (len < 8) return neg(EINVAL);
      if (!f->count) {
        if (f->flags & O_NONBLOCK) return neg(EAGAIN);
        fd_deadlock(stop, "read from an eventfd at zero");
        return neg(EINTR);
      }
      uint64_t v = f->semaphore ? 1 : f->count;
      if (!mem_.write(buf, &v, 8)) return neg(EFAULT);
      f->count -= v;
      return 8;
    }
    default: return neg(EBADF);  // not open for reading
  }
}

uint64_t Personality::fd_write(int fd, uint64_t buf, uint64_t len, Stop *stop) {
  OpenFile *f = ms_.fds.file_of(fd);
  if (!f) return neg(EBADF);
  switch (f->kind) {
    case OpenFile::Stdout: return sys_write(1, buf, len, stop);
    case OpenFile::Stderr: return sys_write(2, buf, len, stop);
    case OpenFile::ScratchFile: return scratch_rw(*f, buf, len, &f->pos, true);
    case OpenFile::PipeWrite: {
      Pipe &p = ms_.fds.pipes.at(f->pipe);
      if (!p.readers) return neg(EPIPE);  // SIGPIPE is not delivered: the writer sees EPIPE
      const uint8_t *src = mem_.ptr(buf, len);
      if (!src && len) return neg(EFAULT);
      uint64_t room = FdTable::kPipeBytes - std::min(p.buf.size(), FdTable::kPipeBytes);
      // Linux: a blocking write waits until all of it went in; a non-blocking one takes what
      // fits, except that up to PIPE_BUF bytes go in whole or not at all.
      if (len > room) {
        if (!(f->flags & O_NONBLOCK)) {
          fd_deadlock(stop, "write to a full pipe");
          return neg(EINTR);
        }
        if (!room || len <= 4096) return neg(EAGAIN);
      }
      uint64_t n = std::min(len, room);
      p.buf.append(reinterpret_cast<const char *>(src), n);
      return n;
    }
    case OpenFile::EventFd: {
      if (len < 8) return neg(EINVAL);
      uint64_t v;
      if (!mem_.read(&v, buf, 8)) return neg(EFAULT);
      if (v == ~0ull) return neg(EINVAL);
      if (v > ~0ull - 1 - f->count) {
        if (f->flags & O_NONBLOCK) return neg(EAGAIN);
        fd_deadlock(stop, "write to a full eventfd");
        return neg(EINTR);
      }
      f->count += v;
      return 8;
    }
    default: return neg(EBADF);  // not open for writing
  }
}

uint64_t Personality::fd_dup(int old, int fd, bool cloexec, bool exact) {
  auto taken = [&](int x) { return sockets_.count(x) > 0; };
  if (int h = host_fd(old); h >= 0) {  // a socket: a second host fd for the same socket
    if (!exact) fd = ms_.fds.lowest_free(fd, taken);
    if (fd < 0) return neg(EMFILE);
    int nh = fcntl(h, F_DUPFD_CLOEXEC, 0);
    if (nh < 0) return neg(errno);
    ms_.fds.close(fd);
    if (int oh = host_fd(fd); oh >= 0) ::close(oh);
    sockets_[fd] = nh;
    return uint64_t(fd);
  }
  if (!ms_.fds.file_of(old)) return neg(EBADF);
  if (!exact) fd = ms_.fds.lowest_free(fd, taken);
  if (fd < 0) return neg(EMFILE);
  if (int oh = host_fd(fd); oh >= 0) {  // dup2 over a socket closes it
    ::close(oh);
    sockets_.erase(fd);
  }
  ms_.fds.share(old, fd, cloexec);
  return uint64_t(fd);
}

uint64_t Personality::fd_poll(uint64_t fds_at, uint64_t nfds, int64_t ms, Stop *stop) {
  if (nfds > uint64_t(FdTable::kMaxFds)) return neg(EINVAL);
  std::vector<pollfd> ps(nfds);
  if (nfds && !mem_.read(ps.data(), fds_at, nfds * sizeof(pollfd))) return neg(EFAULT);
  for (;;) {
    int ready = 0;
    std::vector<int> sockets;
    for (pollfd &p : ps) {
      p.revents = 0;
      if (p.fd < 0) continue;
      uint32_t r = fd_ready(p.fd);
      if (host_fd(p.fd) >= 0) sockets.push_back(host_fd(p.fd));
      p.revents = short(r & (uint32_t(uint16_t(p.events)) | POLLERR | POLLHUP | POLLNVAL));
      if (p.revents) ready++;
    }
    if (ready || ms == 0) {
      for (uint64_t i = 0; i < nfds; i++)
        if (!mem_.write(fds_at + i * sizeof(pollfd) + 6, &ps[i].revents, 2)) return neg(EFAULT);
      return uint64_t(ready);
    }
    if (!fd_wait(sockets, ms, stop, "poll() on fds nothing will make ready")) return neg(EINTR);
    if (sockets.empty() || ms > 0) ms = 0;  // one more look, then the answer
  }
}

uint64_t Personality::fd_epoll_wait(int epfd, uint64_t out, int64_t max, int64_t ms, Stop *stop) {
  OpenFile *ep = ms_.fds.file_of(epfd);
  if (!ep || ep->kind != OpenFile::Epoll) return ep ? neg(EINVAL) : neg(EBADF);
  if (max <= 0 || max > 1 << 20) return neg(EINVAL);
  if (!mem_.ptr(out, uint64_t(max) * sizeof(epoll_event))) return neg(EFAULT);
  for (;;) {
    std::vector<epoll_event> evs;
    std::vector<int> sockets;
    // fd_ready may look at other files; re-find this one by number after each look.
    std::vector<int> order;
    for (auto &[wfd, w] : ep->watches) order.push_back(wfd);
    for (int wfd : order) {
      if (int64_t(evs.size()) >= max) break;
      uint32_t r = fd_ready(wfd);
      if (host_fd(wfd) >= 0) sockets.push_back(host_fd(wfd));
      OpenFile::Watch &w = ms_.fds.file_of(epfd)->watches.at(wfd);
      uint32_t got = r & (w.events | EPOLLERR | EPOLLHUP);
      if (w.events & EPOLLET) {  // edge-triggered: only what became ready since the last report
        uint32_t fresh = got & ~w.last;
        w.last = got;
        got = fresh;
      }
      if (!got || !(w.events & ~(EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE | EPOLLWAKEUP))) continue;
      epoll_event e;
      std::memset(&e, 0, sizeof e);
      e.events = got;
      e.data.u64 = w.data;
      evs.push_back(e);
      if (w.events & EPOLLONESHOT) w.events &= EPOLLET | EPOLLONESHOT;  // disarmed until EPOLL_CTL_MOD
    }
    if (!evs.empty() || ms == 0) {
      if (!evs.empty() && !mem_.write(out, evs.data(), evs.size() * sizeof(epoll_event))) return neg(EFAULT);
      return evs.size();
    }
    if (!fd_wait(sockets, ms, stop, "epoll_wait() on a set nothing will make ready")) return neg(EINTR);
    if (sockets.empty() || ms > 0) ms = 0;
    ep = ms_.fds.file_of(epfd);
  }
}

uint64_t Personality::fd_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                             bool *handled, Stop *stop) {
  *handled = true;
  int fd = int(a0);
  auto taken = [&](int x) { return sockets_.count(x) > 0; };
  // Calls on one fd: a socket's go to net_syscall.
  switch (nr) {
    case NR_read: case NR_write: case NR_close: case NR_fstat: case NR_lseek: case NR_ioctl: case NR_pread64:
    case NR_pwrite64: case NR_readv: case NR_writev: case NR_fcntl:
      if (host_fd(fd) >= 0 && !(nr == NR_fcntl && (a1 == F_DUPFD || a1 == F_DUPFD_CLOEXEC))) {
        *handled = false;
        return 0;
      }
  }
  switch (nr) {
    case NR_read: return fd_read(fd, a1, a2, stop);
    case NR_write: return fd_write(fd, a1, a2, stop);
    case NR_readv:
    case NR_writev: {
      if (a2 > 1024) return neg(EINVAL);
      uint64_t total = 0;
      for (uint64_t i = 0; i < a2; i++) {
        uint64_t iov[2];
        if (!mem_.read(iov, a1 + 16 * i, 16)) return neg(EFAULT);
        uint64_t r = nr == NR_writev ? fd_write(fd, iov[0], iov[1], stop) : fd_read(fd, iov[0], iov[1], stop);
        if (int64_t(r) < 0) return total ? total : r;
        total += r;
        if (stop->kind != Stop::Running) return r;
        if (r < iov[1]) break;
      }
      return total;
    }
    case NR_pread64:
    case NR_pwrite64:
    case NR_lseek: {
      OpenFile *f = ms_.fds.file_of(fd);
      if (!f) return neg(EBADF);
      bool file = f->kind == OpenFile::ViewFile || f->kind == OpenFile::ViewDir;
      if (!file) return neg(ESPIPE);
      if (nr == NR_lseek) return file_lseek(*f, int64_t(a1), int(a2));
      if (nr == NR_pwrite64) return neg(EBADF);  // opened read-only
      if (int64_t(a3) < 0) return neg(EINVAL);
      uint64_t pos = a3;
      return file_read(*f, a1, a2, &pos);
    }
    case NR_close: return ms_.fds.close(fd) ? 0 : neg(EBADF);
    case NR_close_range: {
      if (a2 & ~uint64_t(6) || a1 < a0) return neg(EINVAL);  // CLOSE_RANGE_UNSHARE (2) is a no-op here
      std::vector<int> in;
      for (auto &[f, e] : ms_.fds.fds)
        if (uint64_t(f) >= a0 && uint64_t(f) <= a1) in.push_back(f);
      for (int f : in) {
        if (a2 & 4) ms_.fds.fds.at(f).cloexec = true;  // CLOSE_RANGE_CLOEXEC
        else ms_.fds.close(f);
      }
      if (!(a2 & 4)) {
        for (auto it = sockets_.begin(); it != sockets_.end();) {
          if (uint64_t(it->first) >= a0 && uint64_t(it->first) <= a1) {
            ::close(it->second);
            it = sockets_.erase(it);
          } else {
            ++it;
          }
        }
      }
      return 0;
    }
    case NR_fstat: {
      const OpenFile *f = ms_.fds.file_of(fd);
      if (!f) return neg(EBADF);
      if (f->kind == OpenFile::ViewFile || f->kind == OpenFile::ViewDir) return file_stat(*f, a1);
      uint8_t st[144] = {};
      // stdio and pipes are fifos (stdio buffers them fully, as under a shell pipe); eventfd and
      // epoll are anonymous inodes, mode 0600 without a type, as Linux shows them.
      bool fifo = f->kind != OpenFile::EventFd && f->kind != OpenFile::Epoll;
      uint32_t mode = fifo ? 0010600 : 0600, nlink = 1;
      uint64_t blksize = 4096, ino = uint64_t(ms_.fds.fds.at(fd).file) + 1;
      std::memcpy(st + 8, &ino, 8);
      std::memcpy(st + 16, &nlink, 4);
      std::memcpy(st + 24, &mode, 4);
      std::memcpy(st + 56, &blksize, 8);
      return mem_.write(a1, st, sizeof st) ? 0 : neg(EFAULT);
    }
    case NR_ioctl: {
      OpenFile *f = ms_.fds.file_of(fd);
      if (!f) return neg(EBADF);
      switch (a1) {
        case 0x5421: {  // FIONBIO
          int on;
          if (!mem_.read(&on, a2, 4)) return neg(EFAULT);
          f->flags = on ? f->flags | O_NONBLOCK : f->flags & ~uint32_t(O_NONBLOCK);
          return 0;
        }
        case 0x5451: ms_.fds.fds.at(fd).cloexec = true; return 0;   // FIOCLEX
        case 0x5450: ms_.fds.fds.at(fd).cloexec = false; return 0;  // FIONCLEX
        case 0x541b: {  // FIONREAD
          int n = 0;
          if (f->kind == OpenFile::Stdin) n = int(cfg_.stdin_data.size() - ms_.stdin_pos);
          else if (f->kind == OpenFile::PipeRead) n = int(ms_.fds.pipes.at(f->pipe).buf.size());
          else return neg(ENOTTY);
          return mem_.write(a2, &n, 4) ? 0 : neg(EFAULT);
        }
        default: return neg(ENOTTY);  // no terminals
      }
    }
    case NR_fcntl: {
      if (a1 == F_DUPFD || a1 == F_DUPFD_CLOEXEC)
        return a2 >= uint64_t(FdTable::kMaxFds) ? neg(EINVAL) : fd_dup(fd, int(a2), a1 == F_DUPFD_CLOEXEC, false);
      OpenFile *f = ms_.fds.file_of(fd);
      if (!f) return neg(EBADF);
      switch (a1) {
        case F_GETFD: return ms_.fds.fds.at(fd).cloexec ? FD_CLOEXEC : 0;
        case F_SETFD: ms_.fds.fds.at(fd).cloexec = a2 & FD_CLOEXEC; return 0;
        case F_GETFL: {
          if (f->kind == OpenFile::ScratchFile || f->kind == OpenFile::ScratchDir) return f->access | f->flags;
          uint32_t acc = f->kind == OpenFile::Stdin || f->kind == OpenFile::PipeRead || f->kind == OpenFile::ViewFile ||
                                 f->kind == OpenFile::ViewDir
                             ? O_RDONLY
                         : f->kind == OpenFile::EventFd || f->kind == OpenFile::Epoll ? O_RDWR
                                                                                       : O_WRONLY;
          return acc | f->flags;
        }
        case F_SETFL: f->flags = uint32_t(a2) & kStatusFlags; return 0;
        case F_GETPIPE_SZ:
        case F_SETPIPE_SZ:
          return f->kind == OpenFile::PipeRead || f->kind == OpenFile::PipeWrite ? FdTable::kPipeBytes : neg(EBADF);
        case F_GETLK:
        case F_OFD_GETLK: {  // no other process holds a lock: l_type = F_UNLCK, the rest as given
          uint16_t unlocked = F_UNLCK;
          return mem_.write(a2, &unlocked, 2) ? 0 : neg(EFAULT);
        }
        case F_SETLK: case F_SETLKW: case F_OFD_SETLK: case F_OFD_SETLKW:
          return 0;  // one process: every lock it asks for is free
        default: return neg(EINVAL);
      }
    }
    case NR_dup: return fd_dup(fd, 0, false, false);
    case NR_dup2:
    case NR_dup3: {
      int to = int(a1);
      if (nr == NR_dup3 && (fd == to || (a2 & ~uint64_t(O_CLOEXEC)))) return neg(EINVAL);
      if (a1 >= uint64_t(FdTable::kMaxFds)) return neg(EBADF);
      if (fd == to) return ms_.fds.file_of(fd) || host_fd(fd) >= 0 ? uint64_t(to) : neg(EBADF);
      return fd_dup(fd, to, nr == NR_dup3 && (a2 & O_CLOEXEC), true);
    }
    case NR_pipe:
    case NR_pipe2: {
      uint64_t flags = nr == NR_pipe2 ? a1 : 0;
      if (flags & ~uint64_t(O_CLOEXEC | O_NONBLOCK | O_DIRECT)) return neg(EINVAL);
      if (!mem_.ptr(a0, 8)) return neg(EFAULT);
      int id = ms_.fds.next_pipe++;
      ms_.fds.pipes[id] = Pipe{{}, 1, 1};
      OpenFile r, w;
      r.kind = OpenFile::PipeRead;
      w.kind = OpenFile::PipeWrite;
      r.pipe = w.pipe = id;
      r.flags = w.flags = uint32_t(flags) & O_NONBLOCK;
      int pair[2];
      pair[0] = ms_.fds.install(r, flags & O_CLOEXEC, 0, taken);
      pair[1] = pair[0] < 0 ? -1 : ms_.fds.install(w, flags & O_CLOEXEC, 0, taken);
      if (pair[1] < 0) {
        if (pair[0] >= 0) ms_.fds.close(pair[0]);
        else ms_.fds.pipes.erase(id);
        return neg(EMFILE);
      }
      mem_.write(a0, pair, 8);
      return 0;
    }
    case NR_eventfd:
    case NR_eventfd2: {
      uint64_t flags = nr == NR_eventfd2 ? a1 : 0;
      if (flags & ~uint64_t(O_CLOEXEC | O_NONBLOCK | 1)) return neg(EINVAL);
      OpenFile f;
      f.kind = OpenFile::EventFd;
      f.count = uint32_t(a0);
      f.semaphore = flags & 1;  // EFD_SEMAPHORE
      f.flags = uint32_t(flags) & O_NONBLOCK;
      int r = ms_.fds.install(f, flags & O_CLOEXEC, 0, taken);
      return r < 0 ? neg(EMFILE) : uint64_t(r);
    }
    case NR_epoll_create:
    case NR_epoll_create1: {
      if (nr == NR_epoll_create ? int(a0) <= 0 : (a0 & ~uint64_t(O_CLOEXEC)) != 0) return neg(EINVAL);
      OpenFile f;
      f.kind = OpenFile::Epoll;
      int r = ms_.fds.install(f, nr == NR_epoll_create1 && (a0 & O_CLOEXEC), 0, taken);
      return r < 0 ? neg(EMFILE) : uint64_t(r);
    }
    case NR_epoll_ctl: {
      OpenFile *ep = ms_.fds.file_of(fd);
      int op = int(a1), target = int(a2);
      if (!ep || (!ms_.fds.file_of(target) && host_fd(target) < 0)) return neg(EBADF);
      if (ep->kind != OpenFile::Epoll || target == fd) return neg(EINVAL);
      epoll_event e = {};
      if (op != EPOLL_CTL_DEL && !mem_.read(&e, a3, sizeof e)) return neg(EFAULT);
      auto it = ep->watches.find(target);
      switch (op) {
        case EPOLL_CTL_ADD:
          if (it != ep->watches.end()) return neg(EEXIST);
          ep->watches[target] = {e.events, e.data.u64, 0};
          return 0;
        case EPOLL_CTL_MOD:
          if (it == ep->watches.end()) return neg(ENOENT);
          it->second = {e.events, e.data.u64, 0};
          return 0;
        case EPOLL_CTL_DEL:
          if (it == ep->watches.end()) return neg(ENOENT);
          ep->watches.erase(it);
          return 0;
        default: return neg(EINVAL);
      }
    }
    case NR_poll: return fd_poll(a0, a1, int64_t(int(a2)) < 0 ? -1 : int64_t(int(a2)), stop);
    case NR_ppoll: {
      int64_t ms;
      if (!timeout_ms(mem_, a2, &ms)) return neg(a2 && mem_.ptr(a2, 16) ? EINVAL : EFAULT);
      return fd_poll(a0, a1, ms, stop);
    }
    case NR_epoll_wait:
    case NR_epoll_pwait: return fd_epoll_wait(fd, a1, int64_t(int(a2)), int64_t(int(a3)) < 0 ? -1 : int64_t(int(a3)), stop);
    case NR_epoll_pwait2: {
      int64_t ms;
      if (!timeout_ms(mem_, a3, &ms)) return neg(a3 && mem_.ptr(a3, 16) ? EINVAL : EFAULT);
      return fd_epoll_wait(fd, a1, int64_t(int(a2)), ms, stop);
    }
    default:
      (void)a4;
      *handled = false;
      return 0;
  }
}

}  // namespace farcall
