// What a snapshot holds besides memory (snapshot.h), and restoring masters and backends from it.
//
// A restored master is a new VM built the usual way (kernel region, page tables, backends
// attached) whose RAM is the file's image mapped copy-on-write; its registers are the saved
// ones, but only what the guest itself could have set is taken from the file (general
// registers, user flags, FS/GS bases, the XSAVE image, checked by KVM): segments, control
// registers and tables come from the new VM. So a crafted file can do no more than a program.
#include <cstring>

#include "backend.h"
#include "error.h"
#include "fork.h"
#include "kvm_abi.h"
#include "layout.h"
#include "pvm.h"
#include "snapshot.h"

namespace farcall {
using namespace layout;

namespace {

// The META record: little-endian fields, strings and blobs with a 32-bit length.
class Out {
 public:
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void str(const std::string &s) {
    u32(uint32_t(s.size()));
    raw(s.data(), s.size());
  }
  void raw(const void *p, size_t n) {
    size_t at = b.size();
    b.resize(at + n);
    if (n) std::memcpy(b.data() + at, p, n);
  }
  std::vector<uint8_t> b;
};

class In {
 public:
  In(const std::vector<uint8_t> &b, const std::string &path) : b_(b), path_(path) {}
  [[noreturn]] void bad(const std::string &why) const {
    throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path_ + " is unusable: " + why);
  }
  void raw(void *p, size_t n) {
    if (n > b_.size() - pos_) bad("META ends early");
    std::memcpy(p, b_.data() + pos_, n);
    pos_ += n;
  }
  uint32_t u32() {
    uint32_t v;
    raw(&v, 4);
    return v;
  }
  uint64_t u64() {
    uint64_t v;
    raw(&v, 8);
    return v;
  }
  // A count of items each at least `min_bytes` long: never more than the rest could hold.
  uint32_t count(size_t min_bytes, uint32_t max, const char *what) {
    uint32_t n = u32();
    if (n > max || uint64_t(n) * min_bytes > b_.size() - pos_) bad(std::string("bad ") + what + " count");
    return n;
  }
  std::string str(size_t max, const char *what) {
    uint32_t n = u32();
    if (n > max || n > b_.size() - pos_) bad(std::string("bad ") + what);
    std::string s(reinterpret_cast<const char *>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void end() const {
    if (pos_ != b_.size()) bad("META has trailing bytes");
  }

 private:
  const std::vector<uint8_t> &b_;
  std::string path_;
  size_t pos_ = 0;
};

bool canonical(uint64_t a) { return int64_t(a << 16) >> 16 == int64_t(a); }

void put_mem_state(Out &o, const Personality::MemState &m) {
  o.u64(m.brk_start);
  o.u64(m.brk);
  o.u64(m.mmap_top);
  o.u64(m.stack_bottom);
  o.u64(m.stdin_pos);
  o.u32(uint32_t(m.maps.size()));
  for (auto &[a, n] : m.maps) {
    o.u64(a);
    o.u64(n);
  }
}

// Address-space bookkeeping for RAM [lo, hi), checked against the invariants the system-call
// emulation keeps (Personality::sys_brk, sys_mmap): the VMM acts on these numbers.
Personality::MemState get_mem_state(In &in, uint64_t lo, uint64_t hi) {
  Personality::MemState m;
  m.brk_start = in.u64();
  m.brk = in.u64();
  m.mmap_top = in.u64();
  m.stack_bottom = in.u64();
  m.stdin_pos = in.u64();
  uint32_t n = in.count(16, 1u << 20, "mapping");
  if (m.stdin_pos != 0 || m.brk_start % kPage || m.brk_start < lo || m.brk < m.brk_start || m.mmap_top < m.brk ||
      m.stack_bottom < m.mmap_top || m.stack_bottom > hi)
    in.bad("address-space bookkeeping outside guest memory");
  uint64_t floor = (m.brk + kPage - 1) & ~(kPage - 1);
  for (uint32_t i = 0; i < n; i++) {
    uint64_t a = in.u64(), len = in.u64();
    if (a % kPage || len == 0 || len % kPage || a < floor || a > m.mmap_top || len > m.mmap_top - a)
      in.bad("a mapping outside guest memory");
    m.maps[a] = len;
    floor = a + len;
  }
  return m;
}

// The gate's identity of a backend: its window and its entry points, by name and address.
void put_entries(Out &o, const std::vector<EntryPoint> &es) {
  o.u32(uint32_t(es.size()));
  for (auto &e : es) {
    o.str(e.name);
    o.u64(e.addr);
  }
}

std::vector<EntryPoint> get_entries(In &in, uint64_t lo, uint64_t hi) {
  uint32_t n = in.count(12, uint32_t(kGateEntries), "entry");
  if (n == 0) in.bad("a backend without entry points");
  std::vector<EntryPoint> es;
  for (uint32_t i = 0; i < n; i++) {
    EntryPoint e{in.str(128, "entry name"), in.u64()};
    if (e.name.empty() || e.name.find('.') != std::string::npos || e.name.find('\0') != std::string::npos)
      in.bad("a bad entry name");
    for (auto &x : es)
      if (x.name == e.name) in.bad("an entry registered twice");
    if (e.addr < lo || e.addr >= hi) in.bad("entry " + e.name + " outside backend memory");
    es.push_back(std::move(e));
  }
  return es;
}

bool same_entries(const std::vector<EntryPoint> &a, const std::vector<EntryPoint> &b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (a[i].name != b[i].name || a[i].addr != b[i].addr) return false;
  return true;
}

constexpr uint64_t kXsaveBytes = 4096;  // save_state()'s buffer beyond sizeof(kvm_xsave)

struct MasterMeta {
  uint32_t mode = 0;
  uint64_t memory_bytes = 0, limit = 0, max_threads = 0, output_limit = 0, arena = 0, arena_size = 0, current = 0;
  Personality::MemState ms;
  uint64_t regs[18] = {};
  uint64_t fs = 0, gs = 0, kernel_gs = 0;
  std::vector<uint8_t> xsave;
  struct Be {
    std::string name;
    uint64_t va;
    std::vector<EntryPoint> entries;
  };
  std::vector<Be> backends;
};

// kvm_regs as 18 words, in the kernel's order (rax .. r15, rip, rflags).
static_assert(sizeof(kvm_regs) == 18 * 8);

MasterMeta parse_master(const std::vector<uint8_t> &meta, const std::string &path) {
  In in(meta, path);
  MasterMeta m;
  m.mode = in.u32();
  m.memory_bytes = in.u64();
  m.limit = in.u64();
  m.max_threads = in.u64();
  m.output_limit = in.u64();
  m.arena = in.u64();
  m.arena_size = in.u64();
  m.current = in.u64();
  if (m.mode > uint32_t(EntryMode::PvmNative)) in.bad("bad entry mode");
  if (m.memory_bytes < (4u << 20) || m.memory_bytes > kMaxUserRam || m.memory_bytes % kHugePage)
    in.bad("bad guest memory size");
  if (m.limit < (4u << 20) || m.limit > m.memory_bytes) in.bad("bad guest memory limit");
  if (m.max_threads < 1 || m.max_threads > 4096) in.bad("bad thread limit");
  m.ms = get_mem_state(in, kPage, m.memory_bytes);
  for (auto &r : m.regs) r = in.u64();
  m.fs = in.u64();
  m.gs = in.u64();
  m.kernel_gs = in.u64();
  if (!canonical(m.fs) || !canonical(m.gs) || !canonical(m.kernel_gs)) in.bad("a non-canonical segment base");
  uint32_t xn = in.u32();
  if (xn != farcall_sizeof_kvm_xsave + kXsaveBytes) in.bad("bad XSAVE image size");
  m.xsave.resize(xn);
  in.raw(m.xsave.data(), xn);
  uint32_t nb = in.count(16, 64, "backend");
  for (uint32_t i = 0; i < nb; i++) {
    MasterMeta::Be b;
    b.name = in.str(256, "backend name");
    b.va = in.u64();
    if (b.va < kBackendVa || b.va >= kBackendVaEnd || (b.va - kBackendVa) % kMaxBackendRam) in.bad("bad backend window");
    b.entries = get_entries(in, b.va, b.va + kMaxBackendRam);
    m.backends.push_back(std::move(b));
  }
  in.end();
  return m;
}

[[noreturn]] void incompatible(const std::string &path, const std::string &why) {
  throw VmmError(ErrorCode::SnapshotIncompatible, "snapshot " + path + " cannot be used here: " + why);
}

// Makes the VM of a restored snapshot; a flavor this host cannot run makes the file unusable here.
template <class F>
auto runnable(const std::string &path, EntryMode mode, F make) {
  try {
    return make();
  } catch (const VmmError &e) {
    if (e.code() != ErrorCode::KvmUnavailable) throw;
    throw VmmError(ErrorCode::SnapshotIncompatible, "snapshot " + path + " cannot be used here: it was taken with FARCALL_ENTRY=" +
                                                        entry_mode__name(mode) + ": " + e.what());
  }
}

std::string hex(uint64_t v) {
  char b[24];
  snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

Process::Process(const ProcessConfig &cfg, std::shared_ptr<GuestRegion> ram, const Personality::MemState &ms) {
  VmConfig vc;
  vc.ram_bytes = process__space(cfg);
  vc.mode = cfg.mode;
  vc.ram_va = cfg.ram_va;
  vc.ram_gpa = cfg.ram_gpa;
  vc.ram = std::move(ram);
  vm_ = std::make_unique<Vm>(vc);
  sys_ = std::make_unique<Personality>(cfg, vm_->view(), ms);
  gate_ = std::make_unique<Gate>(*vm_, vm_->view());
  watch_memory();
}

// ---- masters ----

uint64_t Master::save(const std::string &path) {
  if (size_t n = proc_->sys().mem_state().threads.list.size(); n > 1)  // other threads' state is not recorded
    throw VmmError(ErrorCode::BadState, "a master with " + std::to_string(n) +
                                            " threads cannot be saved to a snapshot (docs/threads.md)");
  Out o;
  Vm &vm = proc_->vm();
  o.u32(uint32_t(vm.mode()));
  o.u64(vm.ram_bytes());
  o.u64(proc_->sys().config().memory_bytes);
  o.u64(proc_->sys().config().max_threads);
  o.u64(proc_->sys().config().output_limit);
  o.u64(arena_);
  o.u64(arena_size_);
  o.u64(current_);
  put_mem_state(o, proc_->sys().mem_state());
  o.raw(&state_.regs, sizeof state_.regs);
  o.u64(state_.sregs.fs.base);
  o.u64(state_.sregs.gs.base);
  o.u64(state_.kernel_gs_base);
  o.u32(uint32_t(state_.xsave.size()));
  o.raw(state_.xsave.data(), state_.xsave.size());
  o.u32(uint32_t(proc_->gate().attached_count()));
  for (size_t i = 0; i < proc_->gate().attached_count(); i++) {
    Backend &b = proc_->gate().attached_backend(i);
    o.str(proc_->gate().attached_name(i));
    o.u64(b.va());
    put_entries(o, b.entries());
  }
  snapshot::Writer w(path, snapshot::Kind::Master, proc_->sys().config().mode);
  w.add_memory(snapshot::kRam, vm.ram());
  return w.commit(o.b);
}

Master::Master(const std::string &path, const std::vector<std::pair<std::string, std::shared_ptr<Backend>>> &backends) {
  uint64_t t0 = Vcpu::now_ns();
  auto file = snapshot::File::open(path, snapshot::Kind::Master);
  MasterMeta m = parse_master(file->meta(), path);
  auto ram = file->memory(snapshot::kRam);
  if (ram.size() != 1 || ram[0].len != m.memory_bytes || !file->memory(snapshot::kServe).empty() ||
      !file->memory(snapshot::kInstance).empty())
    throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path + " is unusable: its memory sections do not match its META");

  // The backends, in the order the snapshot's master attached them (a program knows them by
  // gate address, i.e. by that index); backends it did not have come after.
  std::vector<std::pair<std::string, std::shared_ptr<Backend>>> order;
  std::vector<bool> used(backends.size());
  for (auto &want : m.backends) {
    size_t k = 0;
    while (k < backends.size() && backends[k].first != want.name) k++;
    if (k == backends.size())
      incompatible(path, "its program was given backend '" + want.name + "'; give the pool a backend of that name");
    const Backend &b = *backends[k].second;
    if (b.va() != want.va)
      incompatible(path, "backend '" + want.name + "' sits at " + hex(b.va()) + ", it was at " + hex(want.va) +
                             " when the snapshot was taken (load backends in the same order, or from their snapshots)");
    if (!same_entries(b.entries(), want.entries))
      incompatible(path, "backend '" + want.name + "' has other entry points than when the snapshot was taken");
    order.push_back(backends[k]);
    used[k] = true;
  }
  for (size_t k = 0; k < backends.size(); k++)
    if (!used[k]) order.push_back(backends[k]);

  ProcessConfig cfg;
  cfg.memory_bytes = m.limit;
  cfg.space_bytes = m.memory_bytes;
  cfg.max_threads = m.max_threads;
  cfg.output_limit = m.output_limit;
  cfg.mode = file->mode();
  proc_ = runnable(path, cfg.mode, [&] { return std::make_unique<Process>(cfg, file->map(ram[0]), m.ms); });
  for (auto &[name, b] : order) proc_->gate().attach(b.get(), b, name);
  proc_->gate().finish_attach();
  Vm &vm = proc_->vm();
  if (uint32_t(vm.mode()) != m.mode)
    incompatible(path, std::string("its master ran with the ") + entry_mode__name(EntryMode(m.mode)) +
                           " gate, this one would run with " + entry_mode__name(vm.mode()) +
                           " (are the backends trusted as they were?)");
  arena_ = m.arena;
  arena_size_ = m.arena_size;
  current_ = m.current;
  if (!vm.user_ptr(arena_, arena_size_) || !vm.user_ptr(current_, 16))
    throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path + " is unusable: its arena lies outside guest memory");

  // Privileged state from this VM, what the guest could set itself from the file.
  state_ = vm.save_state();
  std::memcpy(&state_.regs, m.regs, sizeof state_.regs);
  if (vm.mode() == EntryMode::PvmNative) {
    // Stopped in the guest kernel, about to return to user mode (Vm::syscall_return).
    if (state_.regs.rip != pvm::resume_va())
      throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path + " is unusable: bad guest-kernel resume point");
    state_.regs.r11 = (state_.regs.r11 & 0x3c0fd5) | 0x202;
    state_.regs.rflags = 2;
  } else {
    state_.regs.rflags = (state_.regs.rflags & 0x3c0fd5) | 2;
  }
  state_.sregs.fs.base = m.fs;
  state_.sregs.gs.base = m.gs;
  state_.kernel_gs_base = m.kernel_gs;
  state_.xsave = std::move(m.xsave);
  try {
    vm.restore_state(state_);  // KVM checks the XSAVE image here, not in the first fork
  } catch (const VmmError &e) {
    throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path + " is unusable: KVM refused its CPU state: " + e.what());
  }
  image_ = vm.ram().data_ranges();
  image_bytes_ = vm.ram().allocated_bytes();
  init_ns_ = Vcpu::now_ns() - t0;
}

// ---- backends ----

namespace {

struct BackendMeta {
  uint64_t memory_bytes = 0, va = 0, fs = 0, gs = 0, trampoline = 0, stack_top = 0, call_info = 0;
  std::vector<EntryPoint> entries;
  Personality::MemState serve;
  std::vector<Personality::MemState> instances;
};

BackendMeta parse_backend(const std::vector<uint8_t> &meta, const std::string &path) {
  In in(meta, path);
  BackendMeta m;
  m.memory_bytes = in.u64();
  m.va = in.u64();
  if (m.memory_bytes < (4u << 20) || m.memory_bytes > kMaxBackendRam || m.memory_bytes % kHugePage)
    in.bad("bad backend memory size");
  if (m.va < kBackendVa || m.va >= kBackendVaEnd || (m.va - kBackendVa) % kMaxBackendRam) in.bad("bad backend window");
  uint64_t lo = m.va, hi = m.va + m.memory_bytes;
  auto inside = [&](uint64_t a, uint64_t n) { return a >= lo + kPage && a <= hi && n <= hi - a; };
  m.fs = in.u64();
  m.gs = in.u64();
  m.trampoline = in.u64();
  m.stack_top = in.u64();
  m.call_info = in.u64();
  if (!canonical(m.fs) || !canonical(m.gs)) in.bad("a non-canonical segment base");
  if (!inside(m.stack_top - 4096, 4096) || m.stack_top % 16) in.bad("call stack outside backend memory");
  if ((m.trampoline && !inside(m.trampoline, 1)) || (m.call_info && !inside(m.call_info, 32)))
    in.bad("trampoline or call info outside backend memory");
  m.entries = get_entries(in, lo + kPage, hi);
  m.serve = get_mem_state(in, lo, hi);
  uint32_t n = in.count(44, 64, "instance");  // a MemState is at least 44 bytes
  if (n == 0) in.bad("no instances");
  for (uint32_t i = 0; i < n; i++) m.instances.push_back(get_mem_state(in, lo, hi));
  in.end();
  return m;
}

struct BackendImage {
  EntryMode mode;
  BackendMeta meta;
  std::shared_ptr<GuestRegion> serve;
  std::vector<std::shared_ptr<GuestRegion>> instances;
};

BackendImage open_backend(const std::string &path) {
  auto file = snapshot::File::open(path, snapshot::Kind::Backend);
  BackendImage img;
  img.mode = file->mode();
  img.meta = parse_backend(file->meta(), path);
  auto serve = file->memory(snapshot::kServe), insts = file->memory(snapshot::kInstance);
  bool ok = serve.size() == 1 && insts.size() == img.meta.instances.size() && file->memory(snapshot::kRam).empty();
  for (auto &s : serve) ok &= s.len == img.meta.memory_bytes;
  for (auto &s : insts) ok &= s.len == img.meta.memory_bytes;
  if (!ok) throw VmmError(ErrorCode::SnapshotCorrupt, "snapshot " + path + " is unusable: its memory sections do not match its META");
  img.serve = file->map(serve[0]);
  for (auto &s : insts) img.instances.push_back(file->map(s));
  return img;
}

}  // namespace

bool Backend::hold_all(uint64_t deadline_ns, std::vector<Instance *> *held) {
  for (auto &i : instances_) {
    if (!acquire_for(*i, kHostOwner, deadline_ns)) {
      for (Instance *h : *held) release(h, false, "");
      held->clear();
      return false;
    }
    held->push_back(i.get());
  }
  return true;
}

uint64_t Backend::save(const std::string &path, uint64_t deadline_ns) {
  if (!available()) throw VmmError(ErrorCode::BadState, "the backend is restarting; snapshot it afterwards");
  std::vector<Instance *> held;
  if (!hold_all(deadline_ns, &held))
    throw VmmError(ErrorCode::Timeout, "snapshot timed out waiting for the calls in flight to finish");
  uint64_t bytes = 0;
  try {
    Out o;
    o.u64(ram_bytes_);
    o.u64(va_);
    o.u64(fs_base_);
    o.u64(gs_base_);
    o.u64(trampoline_);
    o.u64(stack_top_);
    o.u64(call_info_);
    put_entries(o, entries_);
    put_mem_state(o, serve_->mem_state());
    o.u32(uint32_t(instances_.size()));
    for (auto &i : instances_) put_mem_state(o, i->personality->mem_state());
    snapshot::Writer w(path, snapshot::Kind::Backend, cfg_.mode);
    w.add_memory(snapshot::kServe, *serve_ram_);
    // No call is in progress, so each instance's memory is its consistent state (for
    // durability 'call' the same as its committed image).
    for (auto &i : instances_) w.add_memory(snapshot::kInstance, *i->region);
    bytes = w.commit(o.b);
  } catch (...) {
    for (Instance *h : held) release(h, false, "");
    throw;
  }
  for (Instance *h : held) release(h, false, "");
  std::lock_guard<std::mutex> lk(mu_);
  restart_snapshot_ = path;
  return bytes;
}

Backend::Backend(const std::string &path, ProcessConfig cfg, uint64_t call_timeout_ns, bool trusted, Durability durability)
    : durability_(durability), cfg_(cfg), trusted_(trusted), call_timeout_ns_(call_timeout_ns) {
  BackendImage img = open_backend(path);
  BackendMeta &m = img.meta;
  if (!backend_va__take(m.va))
    incompatible(path, "its backend sat at " + hex(m.va) + ", which another backend of this process holds now");
  va_ = m.va;
  cfg_.mode = img.mode;  // the flavor its instances were made under (their auxv says which)
  ram_bytes_ = cfg_.memory_bytes = m.memory_bytes;
  cfg_.ram_va = va_;
  try {
    gpas_.push_back(GpaSpace::process().take(ram_bytes_));  // the init's range (restart from the program swaps it)
    serve_ram_ = img.serve;
    serve_ = std::make_unique<Personality>(cfg_, GuestView{serve_ram_.get(), va_}, m.serve);
    entries_ = m.entries;
    fs_base_ = m.fs;
    gs_base_ = m.gs;
    trampoline_ = m.trampoline;
    stack_top_ = m.stack_top;
    call_info_ = m.call_info;
    lines_ = GuestRegion::create(kPvmLinesBytes, "farcall-lines");
    for (size_t i = 0; i < img.instances.size(); i++) {
      auto inst = std::make_unique<Instance>();
      inst->index = int(i);
      inst->line = new (lines_->host() + 64 * i) InstanceLine{};
      gpas_.push_back(GpaSpace::process().take(ram_bytes_));
      inst->gpa = gpas_.back();
      inst->region = GuestRegion::create(ram_bytes_, "farcall-backend");
      img.instances[i]->copy_data_to(*inst->region);
      inst->personality = std::make_unique<Personality>(*serve_, GuestView{inst->region.get(), va_});
      inst->personality->mem_state() = m.instances[i];
      Instance *ip = inst.get();
      inst->personality->set_output_sink([this, ip](int fd, const char *p, size_t n) { output(*ip, fd, p, n); });
      if (durability_ == Durability::Call) {
        inst->committed = GuestRegion::create(ram_bytes_, "farcall-backend-committed");
        img.instances[i]->copy_data_to(*inst->committed);
        inst->committed_ms = m.instances[i];
        inst->region->set_host_tracking(true);
      }
      instances_.push_back(std::move(inst));
    }
    restart_snapshot_ = path;
  } catch (...) {
    instances_.clear();
    serve_.reset();
    for (uint64_t g : gpas_) GpaSpace::process().give(g);
    backend_va__give(va_);
    throw;
  }
}

void Backend::restart_from_snapshot(const std::string &path, uint64_t deadline_ns) {
  BackendImage img = open_backend(path);
  BackendMeta &m = img.meta;
  if (img.mode != cfg_.mode || m.memory_bytes != ram_bytes_ || m.va != va_ || !same_entries(m.entries, entries_) || m.fs != fs_base_ ||
      m.stack_top != stack_top_ || m.call_info != call_info_ || m.trampoline != trampoline_ ||
      m.instances.size() != instances_.size())
    incompatible(path, "it is not a snapshot of this backend (entry flavor, memory, window, entry points or instances differ)");
  std::vector<Instance *> held;
  if (!hold_all(deadline_ns, &held))
    throw VmmError(ErrorCode::Timeout, "backend restart timed out waiting for calls in flight");
  {
    std::lock_guard<std::mutex> lk(mu_);  // init_stats() reads init_stats_
    serve_ = std::make_unique<Personality>(cfg_, GuestView{img.serve.get(), va_}, m.serve);
    serve_ram_ = img.serve;
    init_stats_ = {};  // no initialization ran
  }
  for (Instance *h : held) {
    size_t i = size_t(h->index);
    h->region->punch_all();
    img.instances[i]->copy_data_to(*h->region);
    h->personality->mem_state() = m.instances[i];
    h->personality->reset_output();
    h->personality->close_sockets();
    h->personality->reset_view();
    if (h->committed) {
      h->committed->punch_all();
      img.instances[i]->copy_data_to(*h->committed);
      h->committed_ms = m.instances[i];
      std::fill(h->region->host_dirty().begin(), h->region->host_dirty().end(), 0);
    }
    h->restores++;
    restores++;
  }
  for (Instance *h : held) release(h, false, "");
  set_available(true);
}

}  // namespace farcall
