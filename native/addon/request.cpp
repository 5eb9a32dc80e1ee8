#include <napi.h>

namespace farcall::addon {
void init_request(Napi::Env, Napi::Object) {}
}  // namespace farcall::addon
