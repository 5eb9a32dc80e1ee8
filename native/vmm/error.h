// Errors of the VMM core. One type with a code, so the addon can map codes to
// typed JavaScript errors without parsing messages.
#pragma once
#include <stdexcept>
#include <string>

namespace farcall {

enum class ErrorCode {
  KvmUnavailable,   // /dev/kvm missing, not permitted, or too old
  KvmFailure,       // an ioctl failed where it should not
  NotElf,
  WrongArch,
  Dynamic,          // dynamically linked program
  CorruptElf,       // truncated, inconsistent headers
  TooBig,           // program does not fit the memory limit
  WrongLayout,      // linked for the other region (request vs backend)
  GuestFault,       // CPU exception inside the guest
  Timeout,
  MemoryLimit,      // the guest ran out of its memory (fatal, not a mere ENOMEM)
  OutputLimit,
  BadState,         // API misuse (e.g. request before the master is ready)
  Protocol,         // a guest broke the farcall protocol (bad arena, bad length)
  Internal,
};

const char *error_code__name(ErrorCode c);

class VmmError : public std::runtime_error {
 public:
  VmmError(ErrorCode code, const std::string &msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Throws KvmFailure with the ioctl name and errno text.
[[noreturn]] void error__sys(const char *what);

}  // namespace farcall
