#include "convert.h"

#include <cstdio>

namespace farcall::addon {

static std::string hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
  return b;
}

static const char *vector_name(int v) {
  static const char *n[] = {"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
                            "#BR bound range", "#UD invalid opcode", "#NM device not available",
                            "#DF double fault", "coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
                            "#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
                            "#MF x87 floating point", "#AC alignment check", "#MC machine check",
                            "#XM SIMD floating point", "#VE virtualization", "#CP control protection"};
  return v >= 0 && v < int(sizeof(n) / sizeof(n[0])) ? n[v] : "exception";
}

Failure Failure::from(const VmmError &e) { return Failure{error_code__name(e.code()), e.what(), {}, {}}; }

Failure Failure::from_stop(const Stop &st, uint64_t memory_bytes, bool had_enomem) {
  Failure f;
  if (st.kind == Stop::Timeout) {
    f.code = "Timeout";
    f.message = "guest " + st.message;
  } else if (st.kind == Stop::OutputLimit) {
    f.code = "OutputLimit";
    f.message = st.message;
  } else if (st.kind == Stop::Fault) {
    const Event &ev = st.event;
    if (ev.kind == Event::Exception) {
      f.code = "GuestFault";
      f.message = std::string("guest fault: ") + vector_name(ev.vector) + " at rip " + hex(ev.rip);
      if (ev.vector == 14) f.message += " accessing " + hex(ev.cr2);
      if (!ev.detail.empty()) f.message += ": " + ev.detail;
      f.numbers = {{"vector", ev.vector}, {"rip", double(ev.rip)}, {"errorCode", double(ev.error_code)}};
      if (ev.vector == 14) f.numbers.push_back({"address", double(ev.cr2)});
      f.strings = {{"ripHex", hex(ev.rip)}, {"addressHex", hex(ev.cr2)}};
    } else {
      f.code = "GuestFault";
      f.message = "guest fault: " + ev.detail + " at rip " + hex(ev.rip);
      f.numbers = {{"rip", double(ev.rip)}};
    }
  } else if (st.kind == Stop::Exited && st.signal) {
    f.code = had_enomem ? "MemoryLimit" : "GuestFault";
    f.message = had_enomem ? "guest died (signal " + std::to_string(st.signal) + ") after running out of its " +
                                 std::to_string(memory_bytes >> 20) + " MiB memory limit"
                           : "guest killed itself with signal " + std::to_string(st.signal);
    f.numbers = {{"signal", st.signal}};
  }
  if (had_enomem && f.code == "GuestFault" && st.kind == Stop::Fault) {
    f.code = "MemoryLimit";
    f.message += " (after running out of its " + std::to_string(memory_bytes >> 20) + " MiB memory limit)";
  }
  return f;
}

Napi::Object Failure::details(Napi::Env env) const {
  Napi::Object d = Napi::Object::New(env);
  for (auto &[k, v] : numbers) d.Set(k, Napi::Number::New(env, v));
  for (auto &[k, v] : strings) d.Set(k, Napi::String::New(env, v));
  return d;
}

Napi::Error Failure::to_error(Napi::Env env) const {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("farcallCode", Napi::String::New(env, code));
  e.Set("details", details(env));
  return e;
}

std::vector<uint8_t> to_bytes(const Napi::Value &v) {
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<uint8_t>>();
    return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
  }
  if (v.IsTypedArray()) {
    auto t = v.As<Napi::Uint8Array>();
    return std::vector<uint8_t>(t.Data(), t.Data() + t.ByteLength());
  }
  if (v.IsString()) {
    std::string s = v.As<Napi::String>();
    return std::vector<uint8_t>(s.begin(), s.end());
  }
  return {};
}

std::vector<std::string> to_strings(const Napi::Value &v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToString());
  return out;
}

Napi::Buffer<uint8_t> to_buffer(Napi::Env env, const std::string &s) {
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

void files_config(const Napi::Object &o, ProcessConfig *cfg) {
  Napi::Value v = o.Get("files");
  if (!v.IsObject()) return;
  Napi::Object f = v.As<Napi::Object>();
  if (f.Get("readOnly").IsString()) cfg->files_root = f.Get("readOnly").As<Napi::String>();
  if (!f.Get("scratch").IsObject()) return;
  Napi::Object s = f.Get("scratch").As<Napi::Object>();
  cfg->scratch_path = opt_string(s, "path");
  cfg->scratch_bytes = opt_u64(s, "maxMiB", 0) << 20;
}

uint64_t opt_u64(const Napi::Object &o, const char *k, uint64_t def) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? uint64_t(v.As<Napi::Number>().DoubleValue()) : def;
}

std::string opt_string(const Napi::Object &o, const char *k) {
  Napi::Value v = o.Get(k);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

Napi::Object stats_object(Napi::Env env, const ProcessStats &ps, const ExitStats &es) {
  Napi::Object s = Napi::Object::New(env);
  Napi::Object sc = Napi::Object::New(env), un = Napi::Object::New(env), ex = Napi::Object::New(env);
  for (auto &[nr, n] : ps.syscalls) sc.Set(std::to_string(nr), Napi::Number::New(env, double(n)));
  for (auto &[nr, n] : ps.unsupported) un.Set(std::to_string(nr), Napi::Number::New(env, double(n)));
  ex.Set("syscall", double(es.syscalls));
  ex.Set("exception", double(es.exceptions));
  ex.Set("gate", double(es.gate));
  ex.Set("io", double(es.io));
  ex.Set("mmio", double(es.mmio));
  ex.Set("internal", double(es.internal));
  ex.Set("interrupted", double(es.interrupted));
  ex.Set("other", double(es.other));
  s.Set("syscalls", sc);
  s.Set("unsupportedSyscalls", un);
  s.Set("exits", ex);
  s.Set("enomem", double(ps.enomem));
  s.Set("netRefused", double(ps.net_refused));
  if (!ps.last_refused.empty()) s.Set("lastRefused", ps.last_refused);
  return s;
}

}  // namespace farcall::addon
