#include "fdtable.h"

namespace farcall {

FdTable FdTable::standard() {
  FdTable t;
  OpenFile::Kind kinds[] = {OpenFile::Stdin, OpenFile::Stdout, OpenFile::Stderr};
  for (int fd = 0; fd < 3; fd++) {
    OpenFile f;
    f.kind = kinds[fd];
    f.flags = fd == 0 ? 0 : 1;  // O_RDONLY, O_WRONLY
    t.install(f, false, fd, [](int) { return false; });
  }
  return t;
}

const OpenFile *FdTable::file_of(int fd) const {
  auto it = fds.find(fd);
  return it == fds.end() ? nullptr : &files.at(it->second.file);
}

OpenFile *FdTable::file_of(int fd) {
  auto it = fds.find(fd);
  return it == fds.end() ? nullptr : &files.at(it->second.file);
}

void FdTable::share(int src, int fd, bool cloexec) {
  int id = fds.at(src).file;
  files[id].refs++;  // before closing `fd`, which may point to the same file
  close(fd);
  fds[fd] = {id, cloexec};
}

bool FdTable::close(int fd) {
  auto it = fds.find(fd);
  if (it == fds.end()) return false;
  int id = it->second.file;
  fds.erase(it);
  // Linux drops a closed fd from every epoll set once its file is gone; keyed by number here.
  for (auto &[fid, f] : files)
    if (f.kind == OpenFile::Epoll) f.watches.erase(fd);
  OpenFile &f = files.at(id);
  if (--f.refs > 0) return true;
  if (f.kind == OpenFile::PipeRead || f.kind == OpenFile::PipeWrite) {
    Pipe &p = pipes.at(f.pipe);
    (f.kind == OpenFile::PipeRead ? p.readers : p.writers)--;
    if (p.readers == 0 && p.writers == 0) pipes.erase(f.pipe);
  }
  files.erase(id);
  return true;
}

}  // namespace farcall
