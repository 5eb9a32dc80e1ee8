// The guest SDK's calls, replaced for programs that run natively (no VM) in test/gen.test.ts:
// entries registered in-process, found by farcall_lookup() as "[backend.]entry", every pointer
// accepted by farcall_caller_ok(). Include from exactly one C++ translation unit.
#include <cstring>
#include <string>
#include <vector>

namespace native_sdk {
struct Entry { std::string name; void *fn; };
inline std::vector<Entry> &entries() { static std::vector<Entry> e; return e; }
}  // namespace native_sdk

extern "C" int farcall_register(const char *name, void *fn) {
  native_sdk::entries().push_back({name, fn});
  return 0;
}
extern "C" void *farcall_lookup(const char *name) {
  const char *dot = strchr(name, '.');
  std::string entry = dot ? dot + 1 : name;
  for (auto &e : native_sdk::entries()) if (e.name == entry) return e.fn;
  return nullptr;
}
extern "C" int farcall_caller_ok(const void *, size_t) { return 1; }
