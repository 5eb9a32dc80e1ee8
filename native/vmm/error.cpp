#include "error.h"

#include <cerrno>
#include <cstring>

namespace farcall {

const char *error_code__name(ErrorCode c) {
  switch (c) {
    case ErrorCode::KvmUnavailable: return "KvmUnavailable";
    case ErrorCode::KvmFailure: return "KvmFailure";
    case ErrorCode::NotElf: return "NotElf";
    case ErrorCode::WrongArch: return "WrongArch";
    case ErrorCode::Dynamic: return "DynamicallyLinked";
    case ErrorCode::CorruptElf: return "CorruptElf";
    case ErrorCode::TooBig: return "TooBig";
    case ErrorCode::WrongLayout: return "WrongLayout";
    case ErrorCode::GuestFault: return "GuestFault";
    case ErrorCode::Timeout: return "Timeout";
    case ErrorCode::MemoryLimit: return "MemoryLimit";
    case ErrorCode::OutputLimit: return "OutputLimit";
    case ErrorCode::BadState: return "BadState";
    case ErrorCode::Protocol: return "Protocol";
    case ErrorCode::Internal: return "Internal";
  }
  return "Internal";
}

void error__sys(const char *what) {
  int e = errno;
  throw VmmError(ErrorCode::KvmFailure, std::string(what) + " failed: " + std::strerror(e));
}

}  // namespace farcall
