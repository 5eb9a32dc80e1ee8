#include "scratch.h"

#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace farcall {

namespace {
int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

ScratchFs::ScratchFs() : t_(std::make_shared<Tree>()) {
  Node root;
  root.dir = true;
  root.mode = 01777;  // like /tmp
  root.nlink = 2;
  root.mtime_ns = root.ctime_ns = now_ns();
  t_->nodes[kRoot] = root;
}

ScratchFs::Tree &ScratchFs::w() {
  if (t_.use_count() > 1) t_ = std::make_shared<Tree>(*t_);  // pages stay shared until written
  return *t_;
}

ScratchFs::Node *ScratchFs::node(uint64_t ino) {
  auto it = w().nodes.find(ino);
  return it == t_->nodes.end() ? nullptr : &it->second;
}

const ScratchFs::Node *ScratchFs::node(uint64_t ino) const {
  auto it = t_->nodes.find(ino);
  return it == t_->nodes.end() ? nullptr : &it->second;
}

bool ScratchFs::is_dir(uint64_t ino) const {
  const Node *n = node(ino);
  return n && n->dir;
}

int64_t ScratchFs::lookup(const std::vector<std::string> &path) const {
  uint64_t ino = kRoot;
  for (const std::string &c : path) {
    const Node *d = node(ino);
    if (!d->dir) return -ENOTDIR;
    auto it = d->entries.find(c);
    if (it == d->entries.end()) return c.size() > kMaxName ? -ENAMETOOLONG : -ENOENT;
    ino = it->second;
  }
  return int64_t(ino);
}

int64_t ScratchFs::create(uint64_t dir, const std::string &name, uint32_t mode, bool directory) {
  const Node *d = node(dir);
  if (!d || !d->dir) return -ENOTDIR;
  if (name.size() > kMaxName) return -ENAMETOOLONG;
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return -EINVAL;
  if (d->entries.count(name)) return -EEXIST;
  if (t_->nodes.size() >= kMaxNodes) return -ENOSPC;
  Tree &t = w();
  uint64_t ino = t.next_ino++;
  Node n;
  n.dir = directory;
  n.mode = mode & 07777;
  n.nlink = directory ? 2 : 1;
  n.parent = dir;
  n.mtime_ns = n.ctime_ns = now_ns();
  t.nodes[ino] = n;
  Node &p = t.nodes.at(dir);
  p.entries[name] = ino;
  if (directory) p.nlink++;
  p.mtime_ns = p.ctime_ns = n.mtime_ns;
  return int64_t(ino);
}

void ScratchFs::drop(Tree &t, uint64_t ino) {
  Node &n = t.nodes.at(ino);
  t.pages -= n.data.size();
  t.nodes.erase(ino);
  t.orphans.erase(ino);
}

int ScratchFs::remove(uint64_t dir, const std::string &name, bool directory) {
  const Node *d = node(dir);
  if (!d || !d->dir) return -ENOTDIR;
  if (name == "." ) return -EINVAL;
  if (name == "..") return -ENOTEMPTY;
  auto it = d->entries.find(name);
  if (it == d->entries.end()) return -ENOENT;
  uint64_t ino = it->second;
  const Node *n = node(ino);
  if (directory && !n->dir) return -ENOTDIR;
  if (!directory && n->dir) return -EISDIR;
  if (directory && !n->entries.empty()) return -ENOTEMPTY;
  Tree &t = w();
  Node &p = t.nodes.at(dir);
  p.entries.erase(name);
  p.mtime_ns = p.ctime_ns = now_ns();
  if (directory) {
    p.nlink--;
    t.nodes.erase(ino);
  } else {
    t.orphans.insert(ino);  // freed by collect() once no fd refers to it
    t.nodes.at(ino).nlink = 0;
  }
  return 0;
}

int ScratchFs::rename(uint64_t from_dir, const std::string &from, uint64_t to_dir, const std::string &to,
                      bool noreplace) {
  const Node *fd = node(from_dir), *td = node(to_dir);
  if (!fd || !td || !fd->dir || !td->dir) return -ENOTDIR;
  if (to.size() > kMaxName) return -ENAMETOOLONG;
  if (from == "." || from == ".." || to == "." || to == ".." || to.empty()) return -EBUSY;
  auto it = fd->entries.find(from);
  if (it == fd->entries.end()) return -ENOENT;
  uint64_t ino = it->second;
  bool dir = node(ino)->dir;
  if (dir)  // a directory cannot move below itself
    for (uint64_t a = to_dir;; a = node(a)->parent) {
      if (a == ino) return -EINVAL;
      if (a == kRoot) break;
    }
  auto old = td->entries.find(to);
  if (old != td->entries.end()) {
    if (old->second == ino) return 0;
    if (noreplace) return -EEXIST;
    const Node *o = node(old->second);
    if (dir && !o->dir) return -ENOTDIR;
    if (!dir && o->dir) return -EISDIR;
    if (o->dir && !o->entries.empty()) return -ENOTEMPTY;
    if (int r = remove(to_dir, to, o->dir); r < 0) return r;
  }
  Tree &t = w();
  int64_t now = now_ns();
  t.nodes.at(from_dir).entries.erase(from);
  t.nodes.at(to_dir).entries[to] = ino;
  if (dir && from_dir != to_dir) {
    t.nodes.at(from_dir).nlink--;
    t.nodes.at(to_dir).nlink++;
  }
  Node &n = t.nodes.at(ino);
  n.parent = to_dir;
  n.ctime_ns = now;
  t.nodes.at(from_dir).mtime_ns = t.nodes.at(to_dir).mtime_ns = now;
  return 0;
}

int64_t ScratchFs::read(uint64_t ino, uint8_t *dst, uint64_t len, uint64_t off) const {
  const Node *n = node(ino);
  if (!n) return -EBADF;
  if (n->dir) return -EISDIR;
  if (off >= n->size) return 0;
  len = std::min(len, n->size - off);
  for (uint64_t done = 0; done < len;) {
    uint64_t at = off + done, pg = at / kPage, in = at % kPage, k = std::min(len - done, kPage - in);
    auto p = n->data.find(pg);
    if (p != n->data.end()) std::memcpy(dst + done, p->second->data() + in, k);
    else std::memset(dst + done, 0, k);
    done += k;
  }
  return int64_t(len);
}

int64_t ScratchFs::write(uint64_t ino, const uint8_t *src, uint64_t len, uint64_t off, uint64_t max_pages) {
  if (!node(ino) || node(ino)->dir) return -EBADF;
  if (off > (1ull << 40) || len > (1ull << 40)) return -EFBIG;
  Tree &t = w();
  Node &n = t.nodes.at(ino);
  uint64_t done = 0;
  while (done < len) {
    uint64_t at = off + done, pg = at / kPage, in = at % kPage, k = std::min(len - done, kPage - in);
    auto &p = n.data[pg];
    if (!p) {
      if (t.pages >= max_pages) {  // full: what was written so far stays, nothing else changes
        n.data.erase(pg);
        break;
      }
      p = std::make_shared<Page>();
      p->fill(0);
      t.pages++;
    } else if (p.use_count() > 1) {
      p = std::make_shared<Page>(*p);  // another tree (the master's, the committed image) keeps the old one
    }
    std::memcpy(p->data() + in, src + done, k);
    done += k;
  }
  if (!done && len) return -ENOSPC;
  n.size = std::max(n.size, off + done);
  n.mtime_ns = n.ctime_ns = now_ns();
  return int64_t(done);
}

int ScratchFs::truncate(uint64_t ino, uint64_t size, uint64_t max_pages) {
  const Node *c = node(ino);
  if (!c) return -EBADF;
  if (c->dir) return -EISDIR;
  if (size > (1ull << 40)) return -EFBIG;
  (void)max_pages;  // growing adds holes, which hold no pages
  Tree &t = w();
  Node &n = t.nodes.at(ino);
  uint64_t keep = (size + kPage - 1) / kPage;
  for (auto it = n.data.lower_bound(keep); it != n.data.end();) {
    t.pages--;
    it = n.data.erase(it);
  }
  auto last = size % kPage && keep ? n.data.find(keep - 1) : n.data.end();
  if (last != n.data.end()) {  // bytes past the new end read as zero if it grows again
    auto &p = last->second;
    if (p.use_count() > 1) p = std::make_shared<Page>(*p);
    std::memset(p->data() + size % kPage, 0, kPage - size % kPage);
  }
  n.size = size;
  n.mtime_ns = n.ctime_ns = now_ns();
  return 0;
}

int ScratchFs::stat(uint64_t ino, ScratchStat *st) const {
  const Node *n = node(ino);
  if (!n) return -ENOENT;
  st->ino = ino;
  st->nlink = n->nlink;
  st->mode = (n->dir ? S_IFDIR : S_IFREG) | n->mode;
  st->size = n->dir ? kPage : n->size;
  st->blocks = n->data.size() * (kPage / 512);
  st->mtime_ns = n->mtime_ns;
  st->ctime_ns = n->ctime_ns;
  return 0;
}

int ScratchFs::chmod(uint64_t ino, uint32_t mode) {
  if (!node(ino)) return -ENOENT;
  Node &n = w().nodes.at(ino);
  n.mode = mode & 07777;
  n.ctime_ns = now_ns();
  return 0;
}

int64_t ScratchFs::getdents(uint64_t ino, uint8_t *buf, uint64_t len, uint64_t *pos) const {
  const Node *d = node(ino);
  if (!d) return -EBADF;
  if (!d->dir) return -ENOTDIR;
  uint64_t out = 0, i = *pos;
  auto put = [&](uint64_t child, const std::string &name, uint8_t type) {
    uint64_t reclen = (19 + name.size() + 1 + 7) & ~uint64_t(7);  // ino, off, reclen, type, name, NUL
    if (out + reclen > len) return false;
    uint8_t *r = buf + out;
    std::memset(r, 0, reclen);
    uint64_t next = i + 1;
    uint16_t rl = uint16_t(reclen);
    std::memcpy(r, &child, 8);
    std::memcpy(r + 8, &next, 8);
    std::memcpy(r + 16, &rl, 2);
    r[18] = type;
    std::memcpy(r + 19, name.data(), name.size());
    out += reclen;
    return true;
  };
  constexpr uint8_t kDtDir = 4, kDtReg = 8;
  // One walk to the position per call, then one step per entry.
  auto it = i < 2 ? d->entries.begin() : i - 2 < d->entries.size() ? std::next(d->entries.begin(), long(i - 2)) : d->entries.end();
  for (;; i++) {
    bool ok;
    if (i == 0) ok = put(ino, ".", kDtDir);
    else if (i == 1) ok = put(d->parent, "..", kDtDir);
    else {
      if (it == d->entries.end()) break;
      ok = put(it->second, it->first, node(it->second)->dir ? kDtDir : kDtReg);
      if (ok) ++it;
    }
    if (!ok) {
      if (!out) return -EINVAL;  // the buffer holds not even one record
      break;
    }
  }
  *pos = i;
  return int64_t(out);
}

void ScratchFs::collect(const std::set<uint64_t> &open) {
  std::vector<uint64_t> gone;
  for (uint64_t ino : t_->orphans)
    if (!open.count(ino)) gone.push_back(ino);
  if (gone.empty()) return;
  Tree &t = w();
  for (uint64_t ino : gone) drop(t, ino);
}

}  // namespace farcall
