// Guest sockets: TCP over IPv4 to the destinations the configuration allows, nothing else.
// A guest fd maps to a host socket; reads and writes go straight to it. Blocking calls are
// cut short by the execution-timeout watchdog (its signal makes them return EINTR).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "personality.h"

namespace farcall {

namespace {
constexpr int kMaxSockets = 64;
uint64_t neg(int e) { return uint64_t(-int64_t(e)); }
uint64_t ret_or_errno(ssize_t r) { return r < 0 ? neg(errno) : uint64_t(r); }
enum : uint64_t {
  NR_read = 0, NR_write = 1, NR_close = 3, NR_readv = 19, NR_writev = 20, NR_socket = 41, NR_connect = 42,
  NR_sendto = 44, NR_recvfrom = 45, NR_shutdown = 48, NR_setsockopt = 54, NR_getsockopt = 55, NR_fcntl = 72,
  NR_getpeername = 52,
};
}  // namespace

int Personality::host_fd(int guest_fd) const {
  auto it = sockets_.find(guest_fd);
  return it == sockets_.end() ? -1 : it->second;
}

void Personality::close_sockets() {
  for (auto &[g, h] : sockets_) close(h);
  sockets_.clear();
  committed_sockets_.clear();
}

void Personality::commit_sockets() {
  if (sockets_.empty() && committed_sockets_.empty()) return;  // the common case: no network
  committed_sockets_.clear();
  for (auto &[g, h] : sockets_) committed_sockets_.insert(g);
}

void Personality::undo_sockets() {
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (committed_sockets_.count(it->first)) {
      ++it;
      continue;
    }
    close(it->second);
    it = sockets_.erase(it);
  }
}

uint64_t Personality::net_syscall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                              uint64_t a5, bool *handled) {
  (void)a5;
  *handled = true;
  if (nr == NR_socket) {
    int domain = int(a0), type = int(a1) & 0xf;
    if (cfg_.net_allow.empty()) {  // this guest has no network: socket() is simply unsupported
      *handled = false;
      return 0;
    }
    if (domain != AF_INET || type != SOCK_STREAM) return neg(EAFNOSUPPORT);
    if (int(sockets_.size()) >= kMaxSockets) return neg(EMFILE);
    int h = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h < 0) return neg(errno);
    int g = ms_.fds.lowest_free(0, [&](int fd) { return sockets_.count(fd) > 0; });
    if (g < 0) {
      close(h);
      return neg(EMFILE);
    }
    sockets_[g] = h;
    return uint64_t(g);
  }
  // Everything else only concerns sockets; fds 0-2 and unknown fds fall through.
  int h = host_fd(int(a0));
  if (h < 0) {
    *handled = false;
    return 0;
  }
  switch (nr) {
    case NR_connect: {
      sockaddr_in sa{};
      if (a2 < sizeof sa || !mem_.read(&sa, a1, sizeof sa)) return neg(EFAULT);
      if (sa.sin_family != AF_INET) return neg(EAFNOSUPPORT);
      uint32_t ip = ntohl(sa.sin_addr.s_addr);
      uint16_t port = ntohs(sa.sin_port);
      bool ok = false;
      for (auto &[aip, aport] : cfg_.net_allow) ok = ok || (aip == ip && aport == port);
      if (!ok) {
        char b[32];
        snprintf(b, sizeof b, "%u.%u.%u.%u:%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, port);
        stats_.net_refused++;
        stats_.last_refused = b;
        return neg(EACCES);
      }
      return ret_or_errno(connect(h, reinterpret_cast<sockaddr *>(&sa), sizeof sa));
    }
    case NR_read:
    case NR_recvfrom: {
      uint8_t *p = mem_.ptr(a1, a2);
      if (!p && a2) return neg(EFAULT);
      ssize_t r = nr == NR_read ? read(h, p, a2) : recv(h, p, a2, int(a3) & (MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT));
      if (r > 0) mem_.mark(a1, uint64_t(r));
      return ret_or_errno(r);
    }
    case NR_write:
    case NR_sendto: {
      const uint8_t *p = mem_.ptr(a1, a2);
      if (!p && a2) return neg(EFAULT);
      return ret_or_errno(send(h, p, a2, MSG_NOSIGNAL | (int(a3) & MSG_DONTWAIT)));
    }
    case NR_readv:
    case NR_writev: {
      if (a2 > 64) return neg(EINVAL);
      uint64_t total = 0;
      for (uint64_t i = 0; i < a2; i++) {
        uint64_t iov[2];
        if (!mem_.read(iov, a1 + 16 * i, 16)) return neg(EFAULT);
        uint8_t *p = mem_.ptr(iov[0], iov[1]);
        if (!p && iov[1]) return neg(EFAULT);
        ssize_t r = nr == NR_readv ? read(h, p, iov[1]) : send(h, p, iov[1], MSG_NOSIGNAL);
        if (r < 0) return total ? total : neg(errno);
        if (nr == NR_readv) mem_.mark(iov[0], uint64_t(r));
        total += uint64_t(r);
        if (uint64_t(r) < iov[1]) break;
      }
      return total;
    }
    case NR_close:
      close(h);
      sockets_.erase(int(a0));
      return 0;
    case NR_shutdown: return ret_or_errno(shutdown(h, int(a1)));
    case NR_setsockopt: {
      // Only harmless options: TCP_NODELAY, SO_KEEPALIVE, SO_RCVTIMEO/SO_SNDTIMEO.
      int level = int(a1), opt = int(a2);
      bool ok = (level == IPPROTO_TCP && opt == TCP_NODELAY) ||
                (level == SOL_SOCKET && (opt == SO_KEEPALIVE || opt == SO_RCVTIMEO || opt == SO_SNDTIMEO));
      if (!ok) return 0;  // accepted and ignored
      uint8_t v[16];
      if (a4 > sizeof v || !mem_.read(v, a3, a4)) return neg(EFAULT);
      return ret_or_errno(setsockopt(h, level, opt, v, socklen_t(a4)));
    }
    case NR_getsockopt: {
      uint32_t len;
      if (!mem_.read(&len, a4, 4)) return neg(EFAULT);
      int v = 0;
      socklen_t l = sizeof v;
      if (getsockopt(h, int(a1), int(a2), &v, &l) < 0) return neg(errno);
      if (len < 4 || !mem_.write(a3, &v, 4)) return neg(EFAULT);
      len = 4;
      mem_.write(a4, &len, 4);
      return 0;
    }
    case NR_getpeername: return neg(ENOTSUP);
    case NR_fcntl: return 0;  // flags are kept blocking; F_GETFL/F_SETFL succeed
    default:
      *handled = false;
      return 0;
  }
}

}  // namespace farcall
