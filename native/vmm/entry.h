// Entry flavors: how guest events (system calls, exceptions, far calls) reach the VMM
// (docs/entry.md). Chosen per VM; this is where the choice is made.
#pragma once
#include <string>

#include "kvm.h"

namespace farcall {

// "trap-page" | "out-stub" | "pvm-native"; anything else throws VmmError(InvalidArgument)
// naming the valid values.
EntryMode entry__parse(const std::string &name);
// The flavor a VM gets: `requested` when not empty, else FARCALL_ENTRY when set (both checked),
// else the host's best: pvm-native on kvm_pvm once its start-up self-check passed (trap-page
// if it did not), out-stub on hardware KVM.
EntryMode entry__resolve(const std::string &requested = "");
// Why a kvm_pvm host's default is trap-page rather than pvm-native (empty otherwise).
std::string entry__fallback_reason();

}  // namespace farcall
