// The fixed guest address layout shared by every VM of a process. Fixed so that
// a pointer means the same thing in every VM (what makes zero-copy calls work).
#pragma once
#include <cstdint>

#include "../../guest-sdk/include/farcall_abi.h"

namespace farcall::layout {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2ull << 20;

// Request program RAM: identity mapped, guest-virtual == guest-physical, user pages.
// Page 0 stays unmapped so null dereferences fault.
constexpr uint64_t kUserBase = 0;
constexpr uint64_t kMaxUserRam = 64ull << 30;
constexpr uint64_t kProgramBase = 0x400000;  // where static-PIE programs are placed
// The main stack sits at the top of a program's RAM, with an unmapped guard below it, so that a
// stack overflow is a page fault there rather than a silent overwrite of the memory below.
constexpr uint64_t kStackGuard = 64ull << 10;
constexpr uint64_t stack__bytes(uint64_t ram_bytes) { return ram_bytes / 8 < (8ull << 20) ? ram_bytes / 8 : 8ull << 20; }
// [lo, hi) of the guard of a program whose RAM is [ram_va, ram_va + ram_bytes).
constexpr uint64_t stack__guard_hi(uint64_t ram_va, uint64_t ram_bytes) { return ram_va + ram_bytes - stack__bytes(ram_bytes); }
constexpr uint64_t stack__guard_lo(uint64_t ram_va, uint64_t ram_bytes) { return stack__guard_hi(ram_va, ram_bytes) - kStackGuard; }

// The guest kernel region: supervisor-only, in the top PML4 slot, backed by its own memslot.
constexpr uint64_t kKernelGpa = 0x1000000000ull;  // 64 GiB
constexpr uint64_t kKernelVa = 0xffffff8000000000ull;
constexpr uint64_t kKernelSize = 2ull << 20;
constexpr uint64_t kGdtOff = 0x0000;
constexpr uint64_t kIdtOff = 0x1000;
constexpr uint64_t kTssOff = 0x2000;
constexpr uint64_t kStubOff = 0x3000;        // the out-stub guest kernel (portable flavor)
constexpr uint64_t kStackOff = 0x4000;       // exception stack, 16 KiB
constexpr uint64_t kStackTop = 0x8000;
constexpr uint64_t kIstTop = 0x9000;         // separate stack for #DF/#MC/NMI
constexpr uint64_t kPageTableOff = 0x10000;  // page-table pages are allocated from here up
// The reset page (native/kernel/reset.S): the last page of the kernel region, mapped user-readable
// and executable, never writable, at kResetVa in every flavor (the lower half, where PVM's user
// root sees it too). Page tables end below it.
constexpr uint64_t kResetOff = kKernelSize - kPage;
constexpr uint64_t kResetVa = FARCALL_GATE_VA - 0x10000;
constexpr uint64_t kResetImageMax = 0xf00, kResetCode = 0xf00, kResetRax = 0xf80, kResetRdx = 0xf88, kResetRcx = 0xf90,
                   kResetGs = 0xf98, kResetRip = 0xfa0, kThreadResume = 0xfc0;

// The trap page: mapped present (supervisor) to a guest-physical page that has no
// memslot. Fetching from it exits to the VMM, at the address that names the event.
constexpr uint64_t kTrapGpa = 0x1040000000ull;
constexpr uint64_t kTrapVa = kKernelVa + 0x40000000ull;
constexpr uint64_t kTrapSyscall = 0x000;      // offset of the LSTAR target
constexpr uint64_t kTrapVector = 0x100;       // + vector * 8
constexpr uint64_t kTrapGateReturn = 0xa00;   // return address of a far call
// The SDK calls here (instead of `syscall`) for farcall's own calls: a plain fetch exit is
// cheaper than `syscall` under PVM. Programs learn the address from auxv entry kAtFarcallTrap.
constexpr uint64_t kTrapSdkCall = 0xb00;
constexpr uint64_t kAtFarcallTrap = FARCALL_AT_TRAP;

// Backends: each backend program (static-PIE) is placed in its own 16 GiB window from kBackendVa
// (1 TiB) up, disjoint from request RAM and from every other backend loaded in the process, so a
// pointer means the same thing in a caller and in the backends it calls, and one VM can map
// several backends at once.
constexpr uint64_t kBackendVa = 0x10000000000ull;  // 1 TiB
constexpr uint64_t kMaxBackendRam = 16ull << 30;   // also the size of a backend's window
constexpr uint64_t kMaxBackendVas = 1024;          // backends loaded at once in a process
constexpr uint64_t kBackendVaEnd = kBackendVa + kMaxBackendVas * kMaxBackendRam;
// Guest-physical space: everything above is below kBackendGpaBase (128 GiB); from there up to the
// CPU's physical address width (CPUID 0x80000008, 39 to 52 bits on real CPUs) each backend
// instance's memory gets its own range, the same in every VM (backend.cpp, GpaSpace). A GPA at or
// above the width cannot be a memslot (KVM_SET_USER_MEMORY_REGION: EINVAL) nor appear in a
// page-table entry (reserved bits).
constexpr uint64_t kBackendGpaBase = 128ull << 30;
constexpr unsigned kMinPhysBits = 38;  // the fixed part, and as much again for backends
inline uint64_t gpa_limit(unsigned phys_bits) { return phys_bits >= 52 ? 1ull << 52 : 1ull << phys_bits; }
// Gate addresses: what a request program calls. Never mapped in any root, so the call
// faults (#PF on instruction fetch) and the VMM looks the address up: backend b's entry e is
// kGateVa + b * kGateStride + e * 16.
constexpr uint64_t kGateVa = FARCALL_GATE_VA;  // 512 GiB, PML4 slot 1
constexpr uint64_t kGateStride = FARCALL_GATE_STRIDE;
// In trap-page mode the gate region is mapped present, user, read-only, to guest-physical
// pages without a memslot: a call fetches from it and exits directly (no #PF delivery).
// Elsewhere it stays unmapped and the call arrives as a #PF.
constexpr uint64_t kGateGpa = 0x1040200000ull;
constexpr uint64_t kGateRegionSize = 4ull << 20;  // 64 backends per program
constexpr uint64_t kGateEntries = kGateStride / 16;

// Segment selectors (the same as Linux so programs that read them see familiar values).
constexpr uint16_t kKernelCs = 0x08;
constexpr uint16_t kKernelDs = 0x10;
constexpr uint16_t kUserDs = 0x18 | 3;
constexpr uint16_t kUserCs = 0x20 | 3;
constexpr uint16_t kTssSel = 0x28;

// The PVM-native flavor (EntryMode::PvmNative; native/kernel/pvm.S, native/vmm/pvm.cpp, docs/pvm.md).
// kvm_pvm's direct switching wants two page-table roots: the kernel root at a guest-physical
// address with bit 12 clear and the user root at kernel root + 0x1000 (the first two page-table
// pages here). Everything supervisor code touches is mapped with U=1 at every level in the kernel
// root; PML4 slot 256 stays free (the hypervisor splices its trampoline there).
constexpr uint64_t kPvmDataOff = 0x9000;    // calibration page (VMM-written at creation; pvm.S DATA)
constexpr uint64_t kPvmCodeOff = 0xa000;    // the PVM guest kernel
constexpr uint64_t kPvmCodeMax = 0x6000;
// Writable guest-kernel state lives in its own memslot, not dirty-logged and copy-on-write per
// fork, so no fork reset has to rewrite it and no in-guest system call pays a dirty-log fault.
constexpr uint64_t kPvmScratchGpa = kKernelGpa + kKernelSize;
constexpr uint64_t kPvmScratchVa = kKernelVa + kKernelSize;
constexpr uint64_t kPvmScratchSize = 0x20000;
constexpr uint64_t kPvmVifOff = 0x0000;        // vIF page (MSR 0x4b564d10 names it); +8: CR2 cell
constexpr uint64_t kPvmVarsOff = 0x1000;       // scratch variables (pvm.S VARS)
constexpr uint64_t kPvmBootStackTop = 0x4000;  // stack of the first instructions of a fresh vCPU
// The in-guest far-call gate (trusted backends, pvm.S "gate"): its configuration page and entry
// table (VMM-written when the backends are attached to a master; forks inherit them), and the
// user-visible stub pages behind kGateVa (backend b's entry e at kGateVa + b * kGateStride +
// e * 16: `mov %rcx,%r10; mov $kPvmGateSys+(b<<12)+e,%eax; syscall; ret`).
constexpr uint64_t kPvmGateOff = 0x4000;
constexpr uint64_t kPvmGateTableOff = 0x8000;   // entry addresses, kGateEntries x 8 bytes in all
constexpr uint64_t kPvmGateStubOff = 0x10000;   // 16 pages of stubs in all
constexpr uint64_t kPvmGateStubBytes = 0x10000;
constexpr uint64_t kPvmGateSys = FARCALL_GATE_SYS;  // system-call number of backend 0's entry 0
constexpr uint64_t kPvmGBackends = 0x00, kPvmGCallerLo = 0x08, kPvmGCallerHi = 0x10, kPvmGStubLo = 0x18,
                   kPvmGStubHi = 0x20;
// One block per backend at kPvmGBlockOff + 64 * b (up to kPvmMaxGateBackends).
constexpr uint64_t kPvmGBlockOff = 0x100, kPvmMaxGateBackends = 16;
constexpr uint64_t kPvmBN = 0x00, kPvmBTramp = 0x08, kPvmBFs = 0x10, kPvmBGs = 0x18, kPvmBStack = 0x20,
                   kPvmBInfo = 0x28, kPvmBTableBase = 0x30;
// A backend's instance lines (one shared page, 64 bytes per instance: owner, calls) and a
// second page whose first word is nonzero while the backend is unavailable; backend b of a VM's
// in-guest gate has them at kPvmLockVa + b * kPvmLinesBytes in its kernel roots.
constexpr uint64_t kPvmLockGpa = kPvmScratchGpa + 0x100000;
constexpr uint64_t kPvmLockVa = kPvmScratchVa + 0x100000;
constexpr uint64_t kPvmLinesBytes = 0x2000, kPvmUnavailableOff = 0x1000;
// Fields of the calibration page and the scratch page (mirrored in pvm.S).
constexpr uint64_t kPvmDEnable = 0x00, kPvmDTsc = 0x08, kPvmDMult = 0x10, kPvmDMono = 0x18, kPvmDRt = 0x20,
                   kPvmDUserLo = 0x28, kPvmDUserHi = 0x30, kPvmDNs = 0x38, kPvmDThousand = 0x40,
                   kPvmDRtMask = 0x48;
constexpr uint16_t kPvmPortVector = 0xb0;  // + vector (0..31); kvm_pvm swallows port 0x80
constexpr uint64_t kPvmVRax = 0x00, kPvmVRcx = 0x08, kPvmVRdx = 0x10, kPvmVRsp = 0x18, kPvmVCount = 0x20;
// Per-VM gate state in the scratch page: which instance this VM calls, its lock owner value,
// and the current call (the VMM reads it on faults, timeouts and contention).
constexpr uint64_t kPvmVInCall = 0x40, kPvmVOwner = 0x48, kPvmVBackend = 0x50, kPvmVBlock = 0x58, kPvmVUrip = 0x60,
                   kPvmVUrfl = 0x68, kPvmVUrsp = 0x70, kPvmVUfs = 0x78, kPvmVKgs = 0x80, kPvmVEntry = 0x88,
                   kPvmVT0 = 0x90, kPvmVNotify = 0x98, kPvmVSaved = 0xa0,  // + 6 x 8: RBX RBP R12-R15
                   kPvmVCommit = 0xd0,
                   kPvmVLines = 0x100, kPvmVInsts = 0x180;                  // + 8 x backend


// Ports of the out-stub guest kernel (and of the PVM-native kernel, which uses the same).
constexpr uint16_t kPortSyscall = 0xe0;
constexpr uint16_t kPortVector = 0x80;        // + vector (0..31)
constexpr uint16_t kPortSpurious = 0xdf;
// The PVM in-guest gate's exits: contention for the instance, a backend system call during a
// call, and a finished call when someone listens for per-call events.
constexpr uint16_t kPortGateWait = 0xe2, kPortGateSyscall = 0xe3, kPortGateNotify = 0xe4, kPortGateBad = 0xe5,
                   kPortGateCommit = 0xe6;

}  // namespace farcall::layout
