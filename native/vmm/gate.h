// The far-call gate of one VM: the backends attached to it, the call in progress, and the
// in-guest gate's tick. It owns no VM: the Process that runs the VM hands it the events that
// belong to calls (gate.cpp says how each is handled).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "personality.h"

namespace farcall {

class Backend;
struct Instance;

class Gate {
 public:
  // The gate of `vm`, whose caller memory is `caller` (pointers a call passes lie there).
  // `host_caller`: the backend's own VM for host calls, which always takes the exit gate.
  Gate(Vm &vm, GuestView caller, bool host_caller = false);
  // A fork's gate: the backends `master` attached, on the fork's VM.
  Gate(const Gate &master, Vm &vm, GuestView caller);
  Gate(const Gate &) = delete;
  Gate &operator=(const Gate &) = delete;

  // Makes every instance of `backend` callable through the gate. Only before the VM first
  // runs; forks inherit it. `keep` holds the backend alive (null for its own host caller).
  // If every backend attached is trusted and the VM is pvm-native, calls take the in-guest gate.
  void attach(Backend *backend, std::shared_ptr<Backend> keep, const std::string &name);
  // Decides the gate for the attached backends now (it is otherwise done when the VM first
  // runs): a master restored from a snapshot never runs, and its forks inherit the decision.
  void finish_attach();
  size_t attached_count() const { return attached_.size(); }
  Backend &attached_backend(size_t i) const { return *attached_.at(i).backend; }
  const std::string &attached_name(size_t i) const { return attached_.at(i).name; }

  // farcall_lookup(name): the gate address of "backend.entry" or "entry", or -errno.
  uint64_t lookup(uint64_t name_ptr, uint64_t len);
  // The last farcall_lookup() that found nothing, in words ("kv.get: no backend named kv is
  // attached (attached: none)"), so a request program that gives up can be explained.
  const std::string &lookup_miss() const { return lookup_miss_; }
  // The first farcall_lookup("name.entry") whose backend is not attached at all, in words.
  const std::string &unattached_lookup() const { return unattached_lookup_; }
  // Why the last far call did not return (a fault with its vector, rip and address, a timeout,
  // an exit), for the host call's error; empty after a call that returned.
  const std::string &last_fault() const { return last_fault_; }
  bool in_call() const { return call_.active; }

  // The run loop's side of it (Process::run). begin_run() before the VM runs until
  // `deadline_ns`; wake_at() is when the VM must next come back to the VMM.
  void begin_run(uint64_t deadline_ns);
  uint64_t wake_at(uint64_t deadline_ns) const { return call_.active ? call_.deadline : tick_ ? tick_ : deadline_ns; }
  enum class Handled {
    No,            // not the gate's: the process handles it
    Resume,        // handled, the VM goes on
    Stop,          // handled, the VM stops with the Stop filled in
    HostCallDone,  // a host call ended, its result in RAX
  };
  Handled on_event(const Event &ev, uint64_t deadline_ns, Stop *stop);
  // Around a system call the VMM answers for the program: the in-guest gate's tick must not cut
  // a blocking call short (sleep, socket), only the request's limit applies meanwhile.
  void pause_tick(uint64_t deadline_ns);
  void resume_tick();
  // Starts a call from the host into entry `entry` of attached backend `index` (args in
  // RDI..RCX); false with `stop` filled if it cannot start. `*watch` is what the watchdog must
  // be armed for, call_deadline() what the VM runs until.
  bool begin_host_call(size_t index, int entry, const uint64_t args[4], uint64_t deadline_ns, Stop *stop,
                       uint64_t *watch);
  uint64_t call_deadline() const { return call_.deadline; }
  // Gives up a far call the caller will not finish (it is being reset or destroyed).
  void abandon(const char *why);
  // The in-guest gate: whatever stopped the VM, an instance it holds goes back (restored if
  // the stop came in the middle of a call).
  void pvm_cleanup(const char *why);

 private:
  struct Attached {
    Backend *backend;
    std::shared_ptr<Backend> keep;
    std::string name;
    std::vector<uint64_t> roots;  // page-table root per instance
  };
  struct Call {
    bool active = false, host = false;
    Attached *at = nullptr;
    Instance *inst = nullptr;
    int entry = -1;
    uint64_t ret_rip = 0, caller_rsp = 0, caller_rflags = 0, caller_fs = 0, caller_gs = 0, caller_cr3 = 0, t0 = 0,
             deadline = 0;
    uint64_t saved[6] = {};  // the caller's RBX, RBP, R12-R15: put back if the call does not return
  };
  // The exit gate. A call to gate address `addr` with the caller's stack at `rsp` (return
  // address on top).
  bool enter(uint64_t addr, uint64_t rsp, uint64_t rflags, bool fetch, const Event &ev, Stop *stop);
  uint64_t exception_rflags();  // RFLAGS in the frame of the exception being handled
  void switch_in(Backend &be, Instance &inst, uint64_t root, int entry);
  void leave(int64_t result, bool restore, const std::string &why);
  // A call's end as on_event() reports it: a host call is over, a guest's caller resumes.
  Handled left() {
    if (!call_.host) return Handled::Resume;
    call_.host = false;
    return Handled::HostCallDone;
  }
  void syscall();
  // A backend's system call inside a call, on `inst`'s personality: false (with the error value
  // the caller gets and why) if the call must end there (a farcall call, exit, output limit).
  bool backend_syscall(Instance &inst, uint64_t *ret, int64_t *err, std::string *why);
  // What stopped a backend inside a call, for its Fault event and restore reason.
  static std::string fault_what(const Event &ev);
  // The PVM in-guest gate: the exits it takes, and the VMM's part on faults and timeouts.
  // pvm_event() returns true when it handled the event and the guest goes on.
  bool pvm_event(const Event &ev, uint64_t deadline_ns);
  struct Ref {
    Backend &be;
    Instance &inst;
  };
  Ref pvm_ref(int backend);         // attached backend b and the instance this VM calls
  uint64_t pvm_tick_period() const;  // the shortest call timeout of the attached backends
  void pvm_abort(int64_t result, const std::string &why);
  void pvm_watch(uint64_t until_ns);  // the watchdog for this vCPU: armed until then (0: off)

  Vm *vm_;
  GuestView caller_;
  bool host_caller_ = false;
  bool pending_ = false;  // attached, gate not decided yet
  uint64_t tick_ = 0;     // in-guest gate: when the watchdog next checks the call's age
  uint64_t req_deadline_ = 0;
  std::vector<Attached> attached_;
  std::string last_fault_, lookup_miss_, unattached_lookup_;
  Call call_;
};

}  // namespace farcall
