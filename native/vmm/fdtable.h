// The guest's file descriptors: stdio, pipes, eventfds and epoll instances, all held in the
// VMM as plain data. A fork reset or a backend's per-call undo restores the whole table by
// assignment (it is part of Personality::MemState), so nothing here may own a host resource:
// sockets, which are host fds, stay in Process::sockets_ and only their numbers are shared.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace farcall {

// One open file description (what dup'ed fds share: the offset, the status flags).
struct OpenFile {
  enum Kind : uint8_t { Stdin, Stdout, Stderr, PipeRead, PipeWrite, EventFd, Epoll, ViewFile, ViewDir, ScratchFile, ScratchDir } kind = Stdin;
  int refs = 0;          // fds pointing here
  uint32_t flags = 0;    // O_NONBLOCK and the other status flags F_GETFL reports
  int pipe = -1;         // PipeRead/PipeWrite: the pipe
  uint64_t count = 0;    // EventFd: the counter
  bool semaphore = false;
  int obj = -1;          // ViewFile/ViewDir: the FileView object
  uint64_t pos = 0;      // ViewFile: the offset; ViewDir: the host's directory cookie
  std::string path;      // ViewDir, ScratchDir: the guest path it was opened by (openat relative to it)
  uint64_t ino = 0;      // ScratchFile/ScratchDir: the inode in MemState::scratch (scratch.h)
  uint32_t access = 0;   // ScratchFile: O_RDONLY, O_WRONLY or O_RDWR
  struct Watch {
    uint32_t events;
    uint64_t data;
    uint32_t last;  // EPOLLET: what the last report saw ready
  };
  std::map<int, Watch> watches;  // Epoll: fd -> what it waits for
};

struct Pipe {
  std::string buf;
  int readers = 0, writers = 0;  // open file descriptions of each end
};

struct FdTable {
  static constexpr int kMaxFds = 1024;
  static constexpr size_t kPipeBytes = 65536;  // Linux's default pipe capacity
  struct Fd {
    int file;
    bool cloexec;
  };
  std::map<int, Fd> fds;
  std::map<int, OpenFile> files;
  std::map<int, Pipe> pipes;
  int next_file = 0, next_pipe = 0;
  uint32_t umask = 022;
  std::string comm = "farcall";  // prctl(PR_SET_NAME)
  std::string cwd = "/";         // chdir: a guest path, normalized (scratchcalls.cpp)

  // A table with fds 0, 1 and 2 open on the program's stdin, stdout and stderr.
  static FdTable standard();
  const OpenFile *file_of(int fd) const;
  OpenFile *file_of(int fd);
  // Opens `f` at the lowest free fd >= `from` that `taken` does not claim (sockets); -EMFILE if none.
  template <class Taken>
  int install(const OpenFile &f, bool cloexec, int from, Taken taken) {
    int fd = lowest_free(from, taken);
    if (fd < 0) return fd;
    int id = next_file++;
    files[id] = f;
    files[id].refs = 1;
    fds[fd] = {id, cloexec};
    return fd;
  }
  template <class Taken>
  int lowest_free(int from, Taken taken) const {
    for (int fd = from; fd < kMaxFds; fd++)
      if (!fds.count(fd) && !taken(fd)) return fd;
    return -24;  // EMFILE
  }
  // Points `fd` at the file `src` points to (dup2); the old fd there is closed first.
  void share(int src, int fd, bool cloexec);
  // Closes `fd`: false if it was not open.
  bool close(int fd);
};

}  // namespace farcall
