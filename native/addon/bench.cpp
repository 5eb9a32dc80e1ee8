#include <napi.h>

namespace farcall::addon {
void init_bench(Napi::Env, Napi::Object) {}
}  // namespace farcall::addon
