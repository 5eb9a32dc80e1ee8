// A backend that keeps a running total, served through the skeleton generated from counter.fbs.
#include "counter_farcall_server.hpp"
#include "farcall.h"

namespace {

class Counter final : public smoke::CounterService {
 public:
  farcall::rpc::Status Add(const smoke::AddRequest &req, flatbuffers::FlatBufferBuilder &fbb,
                           flatbuffers::Offset<smoke::AddReply> &reply) override {
    total_ += req.n();
    reply = smoke::CreateAddReply(fbb, total_);
    return {};
  }

 private:
  int32_t total_ = 0;
};

Counter counter;

}  // namespace

int main() {
  if (smoke::Counter_register(counter) != 0) return 1;
  farcall_serve();
}
