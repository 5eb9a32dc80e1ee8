// The key-value backend: an in-memory ordered map served through the skeleton generated from
// kv.fbs (generated/cpp/kv_farcall_server.hpp). Every request reaches these handlers only
// after the skeleton has checked the caller's buffers and verified the FlatBuffer; each
// handler reads the request in place and builds its reply into the caller's buffer.
//
// It also exports raw_get, the same lookup under the plain byte-buffer convention (key in,
// value out, no FlatBuffers), so that bench/stubs.ts can measure what the stubs add.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "farcall.h"
#include "kv_farcall_server.hpp"

namespace {

using Value = std::vector<uint8_t>;

class Store final : public kv::KeyValueService {
 public:
  farcall::rpc::Status Get(const kv::GetRequest &req, flatbuffers::FlatBufferBuilder &fbb,
                           flatbuffers::Offset<kv::GetResponse> &reply) override {
    auto it = map_.find(key(req.key()));
    if (it == map_.end()) {
      reply = kv::CreateGetResponse(fbb, false);
      return {};
    }
    reply = kv::CreateGetResponse(fbb, true, fbb.CreateVector(it->second));
    return {};
  }

  farcall::rpc::Status Put(const kv::PutRequest &req, flatbuffers::FlatBufferBuilder &fbb,
                           flatbuffers::Offset<kv::PutResponse> &reply) override {
    std::string k = key(req.key());
    if (k.empty()) return farcall::rpc::Status::error(22, "Put: the key is empty");
    if (k.size() > 1024) return farcall::rpc::Status::error(36, "Put: the key is longer than 1024 bytes");
    const auto *v = req.value();
    Value value = v ? Value(v->begin(), v->end()) : Value();
    bool replaced = map_.count(k) != 0;
    map_[std::move(k)] = std::move(value);
    reply = kv::CreatePutResponse(fbb, replaced, map_.size());
    return {};
  }

  farcall::rpc::Status Delete(const kv::DeleteRequest &req, flatbuffers::FlatBufferBuilder &fbb,
                              flatbuffers::Offset<kv::DeleteResponse> &reply) override {
    reply = kv::CreateDeleteResponse(fbb, map_.erase(key(req.key())) != 0);
    return {};
  }

  farcall::rpc::Status Scan(const kv::ScanRequest &req, flatbuffers::FlatBufferBuilder &fbb,
                            flatbuffers::Offset<kv::ScanResponse> &reply) override {
    std::string start = key(req.start()), prefix = key(req.prefix());
    uint32_t limit = req.limit();
    std::vector<flatbuffers::Offset<kv::Entry>> entries;
    bool more = false;
    for (auto it = map_.lower_bound(std::max(start, prefix)); it != map_.end(); ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      if (limit && entries.size() == limit) {
        more = true;
        break;
      }
      entries.push_back(kv::CreateEntry(fbb, fbb.CreateString(it->first), fbb.CreateVector(it->second)));
    }
    reply = kv::CreateScanResponse(fbb, fbb.CreateVector(entries), more);
    return {};
  }

  // The raw baseline: key bytes in, value bytes out.
  int64_t raw_get(const void *in, size_t in_len, void *out, size_t out_cap) {
    if (!farcall_caller_ok(in, in_len) || (out_cap && !farcall_caller_ok(out, out_cap))) return -14;
    auto it = map_.find(std::string(static_cast<const char *>(in), in_len));
    if (it == map_.end()) return -2;
    if (it->second.size() > out_cap) return -28;
    std::memcpy(out, it->second.data(), it->second.size());
    return int64_t(it->second.size());
  }

  size_t size() const { return map_.size(); }

 private:
  static std::string key(const flatbuffers::String *s) { return s ? s->str() : std::string(); }
  std::map<std::string, Value> map_;
};

Store store;

int64_t raw_get(const void *in, size_t in_len, void *out, size_t out_cap) { return store.raw_get(in, in_len, out, out_cap); }
int64_t kv_size(void) { return int64_t(store.size()); }

}  // namespace

int main() {
  if (kv::KeyValue_register(store) != 0) return 1;
  farcall_register("raw_get", reinterpret_cast<void *>(&raw_get));
  farcall_register("kv_size", reinterpret_cast<void *>(&kv_size));
  farcall_serve();
}
