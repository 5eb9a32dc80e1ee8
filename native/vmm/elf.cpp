#include "elf.h"

#include <elf.h>

#include <cstring>

#include "error.h"
#include "layout.h"
#include "vm.h"

namespace farcall {

static void corrupt(const std::string &why) { throw VmmError(ErrorCode::CorruptElf, "corrupt ELF: " + why); }

static const Elf64_Phdr *phdrs(const std::vector<uint8_t> &f, const Elf64_Ehdr &eh) {
  uint64_t need = uint64_t(eh.e_phoff) + uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr);
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) corrupt("program header entry size is " + std::to_string(eh.e_phentsize));
  if (eh.e_phnum == 0) corrupt("no program headers");
  if (eh.e_phoff > f.size() || need > f.size()) corrupt("program headers lie past the end of the file (truncated?)");
  return reinterpret_cast<const Elf64_Phdr *>(f.data() + eh.e_phoff);
}

ElfImage elf__inspect(const std::vector<uint8_t> &f, uint64_t region, bool interp_ok, uint64_t at) {
  if (f.size() < 4 || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0)
    throw VmmError(ErrorCode::NotElf, "not an ELF file (bad magic)");
  if (f.size() < sizeof(Elf64_Ehdr)) corrupt("file is shorter than an ELF header (truncated)");
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof(eh));
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
    throw VmmError(ErrorCode::WrongArch, std::string("wrong architecture: farcall runs x86-64 programs, this is ") +
                                             (eh.e_ident[EI_CLASS] != ELFCLASS64 ? "a 32-bit" : "a non-x86-64") +
                                             " ELF (machine " + std::to_string(eh.e_machine) + ")");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) throw VmmError(ErrorCode::WrongArch, "wrong architecture: big-endian ELF");
  if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
    throw VmmError(ErrorCode::NotElf, "not an executable (ELF type " + std::to_string(eh.e_type) + ")");
  const Elf64_Phdr *ph = phdrs(f, eh);
  ElfImage img;
  img.phnum = eh.e_phnum;
  img.phent = eh.e_phentsize;
  uint64_t lo = UINT64_MAX, hi = 0;
  bool has_dynamic = false;
  for (int i = 0; i < eh.e_phnum; i++) {
    if (ph[i].p_type == PT_INTERP) {
      if (!interp_ok)
        throw VmmError(ErrorCode::Dynamic,
                       "dynamically linked program (it asks for an ELF interpreter): farcall runs static programs, "
                       "or dynamic ones whose interpreter and libraries are in files.readOnly; "
                       "link with -static (gcc -static, or musl-gcc -static), or -static-pie");
      const Elf64_Phdr &p = ph[i];
      if (p.p_offset > f.size() || p.p_filesz > f.size() - p.p_offset || p.p_filesz < 2 || p.p_filesz > 4096)
        corrupt("PT_INTERP lies past the end of the file or is not a path");
      img.interp.assign(reinterpret_cast<const char *>(f.data() + p.p_offset), p.p_filesz);
      img.interp.resize(std::strlen(img.interp.c_str()));
    }
    if (ph[i].p_type == PT_DYNAMIC) has_dynamic = true;
    if (ph[i].p_type != PT_LOAD) continue;
    const Elf64_Phdr &p = ph[i];
    if (p.p_filesz > p.p_memsz) corrupt("segment file size exceeds its memory size");
    if (p.p_offset > f.size() || p.p_filesz > f.size() - p.p_offset)
      corrupt("segment data lies past the end of the file (truncated?)");
    if (p.p_vaddr + p.p_memsz < p.p_vaddr) corrupt("segment address overflows");
    if (p.p_align > 1 && (p.p_vaddr % 4096) != (p.p_offset % 4096)) corrupt("segment is misaligned");
    lo = std::min(lo, p.p_vaddr);
    hi = std::max(hi, p.p_vaddr + p.p_memsz);
  }
  if (hi == 0) corrupt("no loadable segments");
  (void)has_dynamic;  // static-PIE has PT_DYNAMIC but no PT_INTERP: it relocates itself
  img.base = eh.e_type == ET_DYN ? (at ? at : region + layout::kProgramBase) - (lo & ~0xfffull) : 0;
  img.lowest = (lo & ~0xfffull) + img.base;
  img.end = hi + img.base;
  img.entry = eh.e_entry + img.base;
  if (img.entry < img.lowest || img.entry >= img.end) corrupt("entry point outside the loaded segments");
  // AT_PHDR: PT_PHDR when present, else the loaded copy that contains e_phoff.
  for (int i = 0; i < eh.e_phnum; i++) {
    if (ph[i].p_type == PT_PHDR) img.phdr = ph[i].p_vaddr + img.base;
  }
  if (!img.phdr) {
    for (int i = 0; i < eh.e_phnum; i++) {
      const Elf64_Phdr &p = ph[i];
      if (p.p_type == PT_LOAD && eh.e_phoff >= p.p_offset && eh.e_phoff < p.p_offset + p.p_filesz)
        img.phdr = p.p_vaddr + (eh.e_phoff - p.p_offset) + img.base;
    }
  }
  return img;
}

ElfImage elf__load(const std::vector<uint8_t> &f, Vm &vm, uint64_t region, uint64_t limit, bool interp_ok,
                   uint64_t at) {
  ElfImage img = elf__inspect(f, region, interp_ok, at);
  // Linked for the other region: below this one, or (a request program) up in the backend region.
  if (img.lowest < region + layout::kPage || (region == 0 && img.lowest >= layout::kBackendVa)) {
    bool backend_region = region >= layout::kBackendVa;
    throw VmmError(ErrorCode::WrongLayout,
                   std::string("program is linked at 0x") + [&] {
                     char b[32];
                     snprintf(b, sizeof b, "%llx", (unsigned long long)img.lowest);
                     return std::string(b);
                   }() + (backend_region ? ", outside the backend region: build backends with farcall_add_program(... BACKEND)"
                                         : ", outside the request region: request programs load at 0x400000 (build without BACKEND)"));
  }
  if (img.end > limit) {
    throw VmmError(ErrorCode::TooBig, "program needs guest memory up to 0x" + [&] {
      char b[32];
      snprintf(b, sizeof b, "%llx", (unsigned long long)img.end);
      return std::string(b);
    }() + " but the memory limit leaves room up to " + std::to_string(limit >> 20) + " MiB; raise memoryMiB");
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof(eh));
  const Elf64_Phdr *ph = phdrs(f, eh);
  for (int i = 0; i < eh.e_phnum; i++) {
    const Elf64_Phdr &p = ph[i];
    if (p.p_type != PT_LOAD) continue;
    uint8_t *dst = vm.user_ptr(p.p_vaddr + img.base, p.p_memsz);
    if (!dst) throw VmmError(ErrorCode::TooBig, "segment does not fit in guest memory");
    std::memcpy(dst, f.data() + p.p_offset, p.p_filesz);
    std::memset(dst + p.p_filesz, 0, p.p_memsz - p.p_filesz);
  }
  return img;
}

}  // namespace farcall
