// C++ emitters: a client header for request programs and a server skeleton for backends.
// Both sit on flatc's own C++ table code (<schema>_generated.h) and farcall_rpc.hpp.
import { hex64, Model, ServiceModel } from './model';
import { banner, cppName, docComment, localServices, schemaBase } from './names';
import { GENERATOR } from './version';

function guard(model: Model, suffix: string): string {
  return `FARCALL_GEN_${schemaBase(model.schemaFile).replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_${suffix}`;
}

function openNs(ns: string[]): string {
  return ns.length ? `namespace ${ns.join(' {\nnamespace ')} {\n` : '';
}

function closeNs(ns: string[]): string {
  return ns.length ? ns.map((n) => `}  // namespace ${n}`).reverse().join('\n') + '\n' : '';
}

export function emitCppClient(model: Model): string {
  const base = schemaBase(model.schemaFile);
  const g = guard(model, 'CLIENT_HPP');
  let s = banner(model, `C++ client for request programs (services of ${base}.fbs).`, '//');
  s += `//
// Usage (in a request program built with farcall_add_program(... LIBC glibc)):
//   static ${localServices(model)[0] ? `${localServices(model)[0].short}Client client;` : 'XClient client;'}
//   if (client.connect("backend-name") != 0) fail(client.error());   // before farcall_ready()
//   flatbuffers::FlatBufferBuilder fbb;
//   auto reply = client.Method(fbb, CreateRequest(fbb, ...));          // the reply is read in place
//   if (!reply) fail(reply.message());
#ifndef ${g}
#define ${g}

#include <cstddef>
#include <cstdint>

#include "farcall_rpc.hpp"
#include "${base}_generated.h"

`;
  for (const svc of localServices(model)) s += cppClientClass(svc);
  s += `#endif  // ${g}\n`;
  return s;
}

function cppClientClass(svc: ServiceModel): string {
  const cls = `${svc.short}Client`;
  let s = openNs(svc.namespace) + '\n';
  s += docComment(svc.doc, '', '//');
  s += `// Client of service ${svc.name}: one method per call, each building its request in this
// program's memory, calling the backend entry through the gate, and verifying the reply, which
// it reads in place (valid until this client's next call).
class ${cls} {
 public:
  static constexpr const char *kService = "${svc.name}";
  static constexpr uint64_t kHash = ${hex64(svc.hash)}ULL;

  explicit ${cls}(size_t reply_capacity = 64 * 1024) : reply_(reply_capacity) {}

  // Looks up the service's entries in backend \`backend\` (the name the host attached it under,
  // or nullptr to find the entries by name alone) and checks that the backend was generated
  // from the same schema. Call it before farcall_ready() so that forks inherit the result.
  // Returns 0, or a negative FARCALL_RPC_E_* value; error() then says why.
  int connect(const char *backend = nullptr) {
    const farcall_rpc_method_id methods[] = {
${svc.methods.map((m) => `        {"${m.name}", "${m.entry}", ${hex64(m.hash)}ULL, &${m.name}_},`).join('\n')}
    };
    return farcall_rpc_connect(backend, kService, "${svc.idEntry}", kHash, methods, sizeof methods / sizeof methods[0]);
  }

  // Why the last connect() failed.
  const char *error() const { return farcall_rpc_last_error(); }
`;
  for (const m of svc.methods) {
    const req = cppName(m.request.name);
    const resp = cppName(m.response.name);
    s += '\n' + docComment(m.doc, '  ', '//');
    s += `  // ${m.name}(${m.request.name}) -> ${m.response.name}: finishes \`request\` in \`fbb\`, calls
  // the backend, and clears \`fbb\` for the next request.
  farcall::rpc::Reply<${resp}> ${m.name}(flatbuffers::FlatBufferBuilder &fbb, flatbuffers::Offset<${req}> request) {
    fbb.Finish(request);
    farcall::rpc::Reply<${resp}> reply = ${m.name}(fbb.GetBufferPointer(), fbb.GetSize());
    fbb.Clear();
    return reply;
  }

  // ${m.name} on an already finished request buffer.
  farcall::rpc::Reply<${resp}> ${m.name}(const void *request, size_t request_len) {
    return farcall::rpc::call<${resp}>(${m.name}_, request, request_len, reply_);
  }
`;
  }
  s += `
 private:
  farcall::rpc::ReplyBuffer reply_;
${svc.methods.map((m) => `  farcall::rpc::EntryFn ${m.name}_ = nullptr;`).join('\n')}
};

`;
  s += closeNs(svc.namespace) + '\n';
  return s;
}

export function emitCppServer(model: Model): string {
  const base = schemaBase(model.schemaFile);
  const g = guard(model, 'SERVER_HPP');
  let s = banner(model, `C++ server skeleton for backends (services of ${base}.fbs).`, '//');
  const first = localServices(model)[0];
  const ex = first ? first.short : 'X';
  s += `//
// Usage (in a backend built with farcall_add_program(... BACKEND)):
//   struct My${ex} : ${first ? cppName(first.name).slice(2) : 'X'}Service {
//     farcall::rpc::Status Method(const Request &req, flatbuffers::FlatBufferBuilder &fbb,
//                                 flatbuffers::Offset<Response> &reply) override { ...; return {}; }
//   };
//   int main() { static My${ex} impl; ${ex}_register(impl); farcall_serve(); }
//
// Before a handler runs, the skeleton has checked both caller buffers with farcall_caller_ok()
// and verified the request with flatbuffers::Verifier; the handler reads the request in place
// in the caller's memory and builds its reply with \`fbb\`, straight into the caller's buffer.
#ifndef ${g}
#define ${g}

#include <cstddef>
#include <cstdint>

#include "farcall_rpc.hpp"
#include "${base}_generated.h"

`;
  for (const svc of localServices(model)) s += cppServerClass(model, svc);
  s += `#endif  // ${g}\n`;
  return s;
}

function cppServerClass(model: Model, svc: ServiceModel): string {
  const cls = `${svc.short}Service`;
  let s = openNs(svc.namespace) + '\n';
  s += docComment(svc.doc, '', '//');
  s += `// The handlers of service ${svc.name}. A method left unimplemented answers Unimplemented.
class ${cls} {
 public:
  static constexpr const char *kService = "${svc.name}";
  static constexpr uint64_t kHash = ${hex64(svc.hash)}ULL;

  virtual ~${cls}() = default;
`;
  for (const m of svc.methods) {
    const req = cppName(m.request.name);
    const resp = cppName(m.response.name);
    s += '\n' + docComment(m.doc, '  ', '//');
    s += `  // ${m.name}: entry ${m.entry}, identity ${hex64(m.hash)}.
  virtual farcall::rpc::Status ${m.name}(const ${req} &request, flatbuffers::FlatBufferBuilder &fbb,
      flatbuffers::Offset<${resp}> &reply) {
    (void)request, (void)fbb, (void)reply;
    return farcall::rpc::Status(farcall::Status_Unimplemented, 0, "${svc.short}.${m.name} is not implemented");
  }
`;
  }
  s += `};

// The entry points of ${svc.name} (what ${svc.short}_register() registers).
namespace ${svc.short}_entries {

inline ${cls} *&service() {
  static ${cls} *instance = nullptr;
  return instance;
}
`;
  for (const m of svc.methods) {
    const req = cppName(m.request.name);
    const resp = cppName(m.response.name);
    s += `
inline int64_t ${m.name}(const void *in, size_t in_len, void *out, size_t out_cap) {
  return farcall::rpc::serve<${req}, ${resp}>("${svc.short}.${m.name}", in, in_len, out, out_cap,
      [](const ${req} &request, flatbuffers::FlatBufferBuilder &fbb, flatbuffers::Offset<${resp}> &reply) {
        return service()->${m.name}(request, fbb, reply);
      });
}
`;
  }
  s += `
// Answers the service's identity, which clients compare with their own at connect time.
inline int64_t Identity(const void *in, size_t in_len, void *out, size_t out_cap) {
  (void)in, (void)in_len;
  static const farcall::rpc::MethodIdentity methods[] = {
${svc.methods.map((m) => `      {"${m.name}", "${m.entry}", ${hex64(m.hash)}ULL, "${m.request.name}", "${m.response.name}"},`).join('\n')}
  };
  return farcall::rpc::answer_identity(out, out_cap, "${svc.name}", ${hex64(svc.hash)}ULL, methods,
      sizeof methods / sizeof methods[0], "${schemaBase(model.schemaFile)}.fbs", "${GENERATOR}");
}

}  // namespace ${svc.short}_entries

// Registers every method of ${svc.name} as an entry point served by \`service\` (which must
// live as long as the backend), plus the identity entry ${svc.idEntry}. Call it before
// farcall_serve(). Returns 0, or -1 if an entry could not be registered.
inline int ${svc.short}_register(${cls} &service) {
  ${svc.short}_entries::service() = &service;
  int rc = 0;
${svc.methods.map((m) => `  rc |= farcall_register("${m.entry}", reinterpret_cast<void *>(&${svc.short}_entries::${m.name}));`).join('\n')}
  rc |= farcall_register("${svc.idEntry}", reinterpret_cast<void *>(&${svc.short}_entries::Identity));
  return rc ? -1 : 0;
}

`;
  s += closeNs(svc.namespace) + '\n';
  return s;
}
