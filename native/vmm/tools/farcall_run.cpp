// farcall-run: runs a static program in a VM from the command line, without Node.
// For debugging the VMM core on its own: farcall-run [--mem MiB] [--timeout ms] PROGRAM [ARGS...]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "../entry.h"
#include "../error.h"
#include "../process.h"

using namespace farcall;

int main(int argc, char **argv) {
  ProcessConfig cfg;
  uint64_t timeout_ms = 10000;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--mem") && i + 1 < argc) cfg.memory_bytes = std::stoull(argv[++i]) << 20;
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout_ms = std::stoull(argv[++i]);
  }
  if (i >= argc) {
    fprintf(stderr, "usage: farcall-run [--mem MiB] [--timeout ms] PROGRAM [ARGS...]\n");
    return 2;
  }
  std::ifstream f(argv[i], std::ios::binary);
  std::vector<uint8_t> elf((std::istreambuf_iterator<char>(f)), {});
  for (int j = i; j < argc; j++) cfg.args.push_back(argv[j]);
  cfg.mode = entry__resolve();
  try {
    Process p(elf, cfg);
    uint64_t t0 = Vcpu::now_ns();
    Stop st = p.run_for(timeout_ms * 1000000);
    uint64_t t1 = Vcpu::now_ns();
    fwrite(p.sys().out().data(), 1, p.sys().out().size(), stdout);
    fwrite(p.sys().err().data(), 1, p.sys().err().size(), stderr);
    fprintf(stderr, "[farcall] stop=%d exit=%d sig=%d msg=%s vec=%d rip=%llx cr2=%llx detail=%s time=%.1fus\n",
            st.kind, st.exit_code, st.signal, st.message.c_str(), st.event.vector,
            (unsigned long long)st.event.rip, (unsigned long long)st.event.cr2, st.event.detail.c_str(),
            (t1 - t0) / 1e3);
    for (auto &[nr, n] : p.sys().stats().syscalls) fprintf(stderr, "  sys %llu x%llu%s\n", (unsigned long long)nr,
                                                     (unsigned long long)n, p.sys().stats().unsupported.count(nr) ? " (ENOSYS)" : "");
    return st.exit_code;
  } catch (const VmmError &e) {
    fprintf(stderr, "farcall-run: %s: %s\n", error_code__name(e.code()), e.what());
    return 1;
  }
}
