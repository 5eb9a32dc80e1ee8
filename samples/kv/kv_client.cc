// A C++ request program that uses the key-value backend through the generated C++ client
// (generated/cpp/kv_farcall_client.hpp). The host sends one text command per request:
//   put KEY VALUE | get KEY | del KEY | scan PREFIX [LIMIT] | bench SIZE N
// and gets a line of text back.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <time.h>
#include <vector>
#include <x86intrin.h>

#include "farcall.h"
#include "kv_farcall_client.hpp"

static kv::KeyValueClient client;
static int connected = -1;
static char connect_error[512];
static farcall_rpc_fn raw_get;
static std::string out;

static void answer(const std::string &s) { farcall_respond(s.data(), s.size()); }

static std::string failure(const char *what, int64_t result, const char *message) {
  char b[600];
  snprintf(b, sizeof b, "error %s %lld %s", what, (long long)result, message);
  return b;
}

static int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// bench SIZE N: N raw_get calls and N stub Get calls on a SIZE-byte value, alternating, each
// timed with the TSC; answers "tsc_per_us raw... | stub..." in TSC ticks (converted on the host).
static std::string bench(size_t size, int n) {
  flatbuffers::FlatBufferBuilder fbb(8192);
  std::string key = "bench" + std::to_string(size);
  std::vector<uint8_t> value(size, 'v');
  auto put = client.Put(fbb, kv::CreatePutRequestDirect(fbb, key.c_str(), &value));
  if (!put) return failure("put", put.result(), put.message());
  static uint64_t raw_out[8192 / 8];
  std::vector<uint64_t> raw(n), stub(n);
  int64_t t0 = now_ns();
  uint64_t c0 = __rdtsc();
  // Alternate raw and stub calls so that drift on the host affects both alike.
  for (int i = 0; i < n; i++) {
    uint64_t a = __rdtsc();
    int64_t r = raw_get(key.data(), key.size(), raw_out, sizeof raw_out);
    raw[i] = __rdtsc() - a;
    if (r != int64_t(size)) return failure("raw_get", r, "");
    a = __rdtsc();
    auto reply = client.Get(fbb, kv::CreateGetRequestDirect(fbb, key.c_str()));
    size_t got = reply && reply->value() ? reply->value()->size() : 0;
    stub[i] = __rdtsc() - a;
    if (got != size) return failure("get", reply.result(), reply.message());
  }
  double tsc_per_us = double(__rdtsc() - c0) / (double(now_ns() - t0) / 1000.0);
  std::string s = std::to_string(tsc_per_us);
  s += " raw";
  for (auto v : raw) s += " " + std::to_string(v);
  s += " stub";
  for (auto v : stub) s += " " + std::to_string(v);
  return s;
}

int main() {
  raw_get = (farcall_rpc_fn)farcall_lookup("kv.raw_get");
  connected = client.connect("kv");
  if (connected != 0) snprintf(connect_error, sizeof connect_error, "%s", client.error());
  farcall_ready();

  void *req;
  size_t len;
  farcall_request(&req, &len);
  std::string line(static_cast<const char *>(req), len);
  std::vector<std::string> w;
  for (size_t p = 0; p <= line.size();) {
    size_t q = line.find(' ', p);
    if (q == std::string::npos) q = line.size();
    if (q > p) w.push_back(line.substr(p, q - p));
    p = q + 1;
  }
  if (connected != 0) answer(failure("connect", connected, connect_error));
  if (w.empty()) farcall_fail("empty command");
  flatbuffers::FlatBufferBuilder fbb(1024);
  const std::string &cmd = w[0];
  if (cmd == "put" && w.size() == 3) {
    std::vector<uint8_t> v(w[2].begin(), w[2].end());
    auto r = client.Put(fbb, kv::CreatePutRequestDirect(fbb, w[1].c_str(), &v));
    if (!r) answer(failure("put", r.result(), r.message()));
    answer("ok replaced=" + std::to_string(r->replaced()) + " size=" + std::to_string(r->size()));
  }
  if (cmd == "get" && w.size() == 2) {
    auto r = client.Get(fbb, kv::CreateGetRequestDirect(fbb, w[1].c_str()));
    if (!r) answer(failure("get", r.result(), r.message()));
    if (!r->found()) answer("missing");
    answer("found " + std::string(r->value() ? reinterpret_cast<const char *>(r->value()->data()) : "", r->value() ? r->value()->size() : 0));
  }
  if (cmd == "del" && w.size() == 2) {
    auto r = client.Delete(fbb, kv::CreateDeleteRequestDirect(fbb, w[1].c_str()));
    if (!r) answer(failure("del", r.result(), r.message()));
    answer(std::string("deleted ") + (r->deleted() ? "1" : "0"));
  }
  if (cmd == "scan" && w.size() >= 2) {
    uint32_t limit = w.size() > 2 ? uint32_t(atoi(w[2].c_str())) : 0;
    auto r = client.Scan(fbb, kv::CreateScanRequestDirect(fbb, nullptr, w[1] == "-" ? "" : w[1].c_str(), limit));
    if (!r) answer(failure("scan", r.result(), r.message()));
    std::string s;
    if (r->entries())
      for (const kv::Entry *e : *r->entries()) {
        s += s.empty() ? "" : ",";
        s += e->key()->str() + "=" + std::string(reinterpret_cast<const char *>(e->value()->data()), e->value()->size());
      }
    answer(s + " more=" + (r->more() ? "1" : "0"));
  }
  if (cmd == "putempty") {  // an application error from the handler
    auto r = client.Put(fbb, kv::CreatePutRequestDirect(fbb, ""));
    answer(r ? "ok" : failure("put", r.result(), (std::to_string(r.code()) + " " + r.message()).c_str()));
  }
  if (cmd == "bench" && w.size() == 3) answer(bench(size_t(atol(w[1].c_str())), atoi(w[2].c_str())));
  farcall_fail("unknown command");
}
