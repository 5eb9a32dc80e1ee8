#include "error.h"

#include <cerrno>
#include <cstring>

namespace farcall {

namespace {
const char *const kNames[] = {
#define FARCALL_ERROR(id, name, what) name,
#include "error_codes.h"
#undef FARCALL_ERROR
};
}  // namespace

const char *error_code__name(ErrorCode c) {
  size_t i = size_t(c);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "Internal";
}

const char *const *error_code__all(size_t *count) {
  *count = sizeof kNames / sizeof kNames[0];
  return kNames;
}

void error__sys(const char *what) {
  int e = errno;
  throw VmmError(ErrorCode::KvmFailure, std::string(what) + " failed: " + std::strerror(e));
}

}  // namespace farcall
