// farcall RPC runtime for C++: what generated C++ clients and server skeletons share.
// Copied verbatim into each generated cpp/ folder by farcall-gen; do not edit the copy.
//
// Client side: farcall::rpc::Reply<T> (the outcome of a call, the reply read in place) and
// call<T>(), which calls an entry, recognizes the error envelope and verifies the reply.
// Server side: serve<Req, Resp>(), which checks the caller's pointers with
// farcall_caller_ok(), verifies the request with flatbuffers::Verifier, runs the handler,
// and builds the reply straight into the caller's buffer (or answers an error envelope).
#ifndef FARCALL_RPC_HPP
#define FARCALL_RPC_HPP

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "farcall_generated.h"
#include "farcall_rpc.h"
#include "flatbuffers/flatbuffers.h"

namespace farcall {
namespace rpc {

using EntryFn = farcall_rpc_fn;

// What a handler returns: ok(), or an application error with a code and a message that the
// caller receives in the error envelope.
class Status {
 public:
  static Status ok() { return Status(); }
  static Status error(int32_t code, std::string message) { return Status(farcall::Status_Failed, code, std::move(message)); }
  static Status error(std::string message) { return error(0, std::move(message)); }
  Status() = default;
  Status(farcall::Status status, int32_t code, std::string message) : status_(status), code_(code), message_(std::move(message)) {}
  bool is_ok() const { return status_ == farcall::Status_Ok; }
  farcall::Status status() const { return status_; }
  int32_t code() const { return code_; }
  const std::string &message() const { return message_; }

 private:
  farcall::Status status_ = farcall::Status_Ok;
  int32_t code_ = 0;
  std::string message_;
};

// The outcome of a call on the client side. On success value() points at the response table,
// read in place in the client's reply buffer (valid until the client's next call).
template <class T>
class Reply {
 public:
  Reply(int64_t result, const T *value, int32_t code, const char *message)
      : result_(result), value_(value), code_(code), message_(message ? message : "") {}
  bool ok() const { return value_ != nullptr; }
  explicit operator bool() const { return ok(); }
  const T *value() const { return value_; }
  const T *operator->() const { return value_; }
  const T &operator*() const { return *value_; }
  // The call's raw result: the reply's length, or a negative FARCALL_E_* / FARCALL_RPC_E_*.
  int64_t result() const { return result_; }
  // The application code of a Status::error() from the handler (0 otherwise).
  int32_t code() const { return code_; }
  // The handler's message, or a description of the failure.
  const char *message() const { return message_; }

 private:
  int64_t result_;
  const T *value_;
  int32_t code_;
  const char *message_;
};

// A reply buffer, 8-byte aligned, owned by a client.
class ReplyBuffer {
 public:
  explicit ReplyBuffer(size_t capacity) : words_(new uint64_t[(capacity + 7) / 8]), cap_((capacity + 7) / 8 * 8) {}
  uint8_t *data() { return reinterpret_cast<uint8_t *>(words_.get()); }
  size_t capacity() const { return cap_; }

 private:
  std::unique_ptr<uint64_t[]> words_;
  size_t cap_;
};

// Calls `fn` with a finished request and reads the reply of type T in place in `reply`.
template <class T>
Reply<T> call(EntryFn fn, const void *request, size_t request_len, ReplyBuffer &reply) {
  if (!fn) return Reply<T>(FARCALL_RPC_E_NOT_CONNECTED, nullptr, 0, "not connected: call connect() first");
  int64_t r = fn(request, request_len, reply.data(), reply.capacity());
  if (r < 0) return Reply<T>(r, nullptr, 0, farcall_rpc_strerror(r));
  const uint8_t *buf = reply.data();
  size_t len = size_t(r);
  if (len > reply.capacity()) return Reply<T>(FARCALL_RPC_E_BAD_REPLY, nullptr, 0, "the reply length is out of range");
  if (fc_has_identifier(buf, len, FARCALL_RPC_ID_ERROR)) {
    flatbuffers::Verifier v(buf, len);
    if (!v.VerifyBuffer<farcall::Error>(FARCALL_RPC_ID_ERROR))
      return Reply<T>(FARCALL_RPC_E_BAD_REPLY, nullptr, 0, "the error envelope failed verification");
    const farcall::Error *e = flatbuffers::GetRoot<farcall::Error>(buf);
    int32_t status = int32_t(e->status());
    return Reply<T>(-(2000 + int64_t(status ? status : 4)), nullptr, e->code(), e->message() ? e->message()->c_str() : "");
  }
  flatbuffers::Verifier v(buf, len);
  if (!v.VerifyBuffer<T>(FARCALL_RPC_ID_REPLY))
    return Reply<T>(FARCALL_RPC_E_BAD_REPLY, nullptr, 0, farcall_rpc_strerror(FARCALL_RPC_E_BAD_REPLY));
  return Reply<T>(r, flatbuffers::GetRoot<T>(buf), 0, nullptr);
}

// ---- server side --------------------------------------------------------------------------

// Hands the FlatBufferBuilder the caller's reply buffer, so the reply is built where the
// caller reads it. If the reply outgrows it (or the buffers overlap), the builder continues
// in backend memory and serve() answers ReplyTooLarge.
class CallerBufferAllocator : public flatbuffers::Allocator {
 public:
  CallerBufferAllocator(uint8_t *buf, size_t cap) : buf_(buf), cap_(cap) {}
  uint8_t *allocate(size_t size) override {
    if (!given_ && size <= cap_) {
      given_ = true;
      return buf_;
    }
    overflowed_ = true;
    return new uint8_t[size];
  }
  void deallocate(uint8_t *p, size_t) override {
    if (p != buf_) delete[] p;
  }
  bool overflowed() const { return overflowed_; }

 private:
  uint8_t *buf_;
  size_t cap_;
  bool given_ = false;
  bool overflowed_ = false;
};

// Writes an error envelope into `out`; returns its length, or -(2000 + status) if it does not fit.
inline int64_t answer_error(void *out, size_t out_cap, farcall::Status status, int32_t code, const char *message, const char *method) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto m = fbb.CreateString(message ? message : "");
  auto where = fbb.CreateString(method ? method : "");
  fbb.Finish(farcall::CreateError(fbb, status, code, m, where), FARCALL_RPC_ID_ERROR);
  if (out == nullptr || fbb.GetSize() > out_cap) return -(2000 + int64_t(status));
  std::memcpy(out, fbb.GetBufferPointer(), fbb.GetSize());
  return int64_t(fbb.GetSize());
}

// The verification limits applied to every request.
#ifndef FARCALL_RPC_MAX_DEPTH
#define FARCALL_RPC_MAX_DEPTH 64
#endif
#ifndef FARCALL_RPC_MAX_TABLES
#define FARCALL_RPC_MAX_TABLES 100000
#endif

// One call of a generated entry: everything that happens before and after the user's handler.
//   handler(const Req &request, flatbuffers::FlatBufferBuilder &fbb, flatbuffers::Offset<Resp> &reply) -> Status
template <class Req, class Resp, class Handler>
int64_t serve(const char *method, const void *in, size_t in_len, void *out, size_t out_cap, Handler &&handler) {
  // 1. Every caller pointer, before anything reads or writes through it.
  if (out_cap > FLATBUFFERS_MAX_BUFFER_SIZE / 2 || (out_cap && !farcall_caller_ok(out, out_cap))) return FARCALL_RPC_E_BAD_POINTER;
  if (in_len >= FLATBUFFERS_MAX_BUFFER_SIZE / 2 || (in_len && !farcall_caller_ok(in, in_len)))
    return answer_error(out, out_cap, farcall::Status_BadPointer, 0, "the request buffer is not in the caller's memory", method);
  // 2. The request must be a well-formed FlatBuffer of the request table: every offset, string,
  //    vector, union and nested table inside [in, in + in_len).
  const uint8_t *req = static_cast<const uint8_t *>(in);
  flatbuffers::Verifier verifier(req, in_len, FARCALL_RPC_MAX_DEPTH, FARCALL_RPC_MAX_TABLES);
  if (in_len < 8 || !verifier.VerifyBuffer<Req>(nullptr))
    return answer_error(out, out_cap, farcall::Status_BadRequest, 0, "the request is not a valid FlatBuffer of the request table", method);
  // 3. The reply is built in the caller's buffer unless it overlaps the request.
  uint8_t *o = static_cast<uint8_t *>(out);
  size_t cap = out_cap & ~size_t(7);
  bool overlap = out_cap && in_len && o < req + in_len && req < o + out_cap;
  CallerBufferAllocator alloc(overlap ? nullptr : o, overlap ? 0 : cap);
  flatbuffers::FlatBufferBuilder fbb(cap >= 64 && !overlap ? cap : 1024, &alloc, false);
  flatbuffers::Offset<Resp> reply;
  Status st = handler(*flatbuffers::GetRoot<Req>(req), fbb, reply);
  if (!st.is_ok()) return answer_error(out, out_cap, st.status(), st.code(), st.message().c_str(), method);
  if (reply.IsNull()) {
    auto start = fbb.StartTable();
    reply = flatbuffers::Offset<Resp>(fbb.EndTable(start));
  }
  fbb.Finish(reply, FARCALL_RPC_ID_REPLY);
  size_t size = fbb.GetSize();
  if (size > out_cap) return answer_error(out, out_cap, farcall::Status_ReplyTooLarge, 0, "the reply does not fit in the caller's reply buffer", method);
  std::memmove(o, fbb.GetBufferPointer(), size);
  return int64_t(size);
}

// What a "<Service>__farcall_id" entry answers.
struct MethodIdentity {
  const char *name;
  const char *entry;
  uint64_t hash;
  const char *request;
  const char *response;
};

inline int64_t answer_identity(void *out, size_t out_cap, const char *service, uint64_t hash, const MethodIdentity *methods, size_t n,
                               const char *schema, const char *generator) {
  if (out_cap && !farcall_caller_ok(out, out_cap)) return FARCALL_RPC_E_BAD_POINTER;
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<farcall::MethodIdentity>> ms;
  for (size_t i = 0; i < n; i++)
    ms.push_back(farcall::CreateMethodIdentityDirect(fbb, methods[i].name, methods[i].entry, methods[i].hash, methods[i].request, methods[i].response));
  fbb.Finish(farcall::CreateServiceIdentityDirect(fbb, service, hash, &ms, schema, generator), FARCALL_RPC_ID_IDENTITY);
  if (fbb.GetSize() > out_cap) return FARCALL_RPC_E_REPLY_TOO_LARGE;
  std::memcpy(out, fbb.GetBufferPointer(), fbb.GetSize());
  return int64_t(fbb.GetSize());
}

}  // namespace rpc
}  // namespace farcall

#endif  // FARCALL_RPC_HPP
