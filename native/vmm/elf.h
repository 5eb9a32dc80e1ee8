// Loader for x86-64 Linux executables: static (non-PIE ET_EXEC and static-PIE ET_DYN), and
// dynamic ones whose ELF interpreter (PT_INTERP, e.g. ld.so) comes from the file view.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace farcall {

class Vm;

struct ElfImage {
  uint64_t entry = 0;      // relocated entry point
  uint64_t base = 0;       // load bias (0 for ET_EXEC)
  uint64_t phdr = 0;       // guest address of the program headers (AT_PHDR)
  uint16_t phnum = 0, phent = 0;
  uint64_t lowest = 0;     // first byte of the image
  uint64_t end = 0;        // end of the highest segment (start of brk)
  std::string interp;      // PT_INTERP: the ELF interpreter's path, when allowed (else Dynamic)
};

// Validates the file and returns what was found; throws NotElf/WrongArch/CorruptElf, and Dynamic
// for a PT_INTERP unless `interp_ok`. An ET_DYN file is placed at `at` when given, else at the
// region's program base.
ElfImage elf__inspect(const std::vector<uint8_t> &file, uint64_t base = 0, bool interp_ok = false, uint64_t at = 0);
// Copies the segments into the VM's memory, whose RAM starts at guest-virtual `base`; throws
// TooBig when they do not fit below `limit`, WrongLayout when linked for another region.
ElfImage elf__load(const std::vector<uint8_t> &file, Vm &vm, uint64_t base, uint64_t limit, bool interp_ok = false,
                   uint64_t at = 0);

}  // namespace farcall
