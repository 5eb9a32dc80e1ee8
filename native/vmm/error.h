// Errors of the VMM core. One type with a code, so the addon can map codes to
// typed JavaScript errors without parsing messages.
#pragma once
#include <stdexcept>
#include <cstddef>
#include <string>

namespace farcall {

enum class ErrorCode {
#define FARCALL_ERROR(id, name, what) id,
#include "error_codes.h"
#undef FARCALL_ERROR
};

const char *error_code__name(ErrorCode c);
// Every code's name, in the order of error_codes.h.
const char *const *error_code__all(size_t *count);

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
