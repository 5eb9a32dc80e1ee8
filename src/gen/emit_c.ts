// C emitter: for musl (or any C) request programs. Plain readers and builders for the
// schema's tables (FlatBuffers has no C library on Debian), and per service a connect
// function plus one function per call over byte buffers.
import { GenError } from './errors';
import { BaseType, EnumModel, FieldModel, hex64, isScalar, Model, ObjectModel, scalarSize } from './model';
import { banner, cName, cScalarType, docComment, localEnums, localObjects, localServices, schemaBase } from './names';

function literal(t: BaseType, f: FieldModel): string {
  const real = (v: number) => (Number.isInteger(v) && Math.abs(v) < 1e21 ? `${v}.0` : `${v}`);
  if (t === BaseType.Float) return Number.isFinite(f.defaultReal) ? `${real(f.defaultReal)}f` : Number.isNaN(f.defaultReal) ? 'NAN' : f.defaultReal > 0 ? 'INFINITY' : '-INFINITY';
  if (t === BaseType.Double) return Number.isFinite(f.defaultReal) ? real(f.defaultReal) : Number.isNaN(f.defaultReal) ? 'NAN' : f.defaultReal > 0 ? 'INFINITY' : '-INFINITY';
  if (t === BaseType.Bool) return f.defaultInteger ? 'true' : 'false';
  if (t === BaseType.ULong) return `UINT64_C(${f.defaultInteger})`;
  if (t === BaseType.Long) return f.defaultInteger === -(1n << 63n) ? 'INT64_MIN' : `INT64_C(${f.defaultInteger})`;
  return `${f.defaultInteger}`;
}

function enumValue(e: EnumModel, v: bigint): string {
  if (e.underlying === BaseType.ULong) return `UINT64_C(${v})`;
  if (e.underlying === BaseType.Long) return `INT64_C(${v})`;
  return `${v}`;
}

export function emitC(model: Model): string {
  const base = schemaBase(model.schemaFile);
  const g = `FARCALL_GEN_${base.replace(/[^A-Za-z0-9]/g, '_').toUpperCase()}_C_H`;
  let s = banner(model, `C client for request programs (services of ${base}.fbs): table readers and builders,
and per service <ns>_<Service>_connect() plus one function per call over byte buffers.
Static inline functions and per-file state: include it from one translation unit.`, '/*');
  s += `#ifndef ${g}
#define ${g}

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "farcall_rpc.h"

#ifdef __cplusplus
extern "C" {
#endif
`;
  const objects = localObjects(model);
  // Opaque table types first, so that readers can refer to any table.
  s += '\n/* ---- tables (opaque: pointers into a buffer) ---- */\n';
  for (const o of objects) if (!o.isStruct) s += `typedef struct ${cName(o.name)}_table ${cName(o.name)}_table_t;\n`;
  const enums = localEnums(model);
  if (enums.length) s += '\n/* ---- enums and union tags ---- */\n';
  for (const e of enums) {
    s += '\n' + docComment(e.doc, '', '//').replace(/^\/\/ (.*)$/gm, '/* $1 */');
    s += `typedef ${cScalarType(e.underlying)} ${cName(e.name)}_t;\n`;
    for (const v of e.values) s += `#define ${cName(e.name)}_${v.name} ((${cName(e.name)}_t)${enumValue(e, v.value)})\n`;
  }
  // Structs in dependency order (a struct field needs its type declared first).
  const done = new Set<ObjectModel>();
  const emitStruct = (o: ObjectModel) => {
    if (done.has(o)) return;
    done.add(o);
    for (const f of o.fields) if (f.type.base === BaseType.Obj) emitStruct(model.objects[f.type.index]);
    if (objects.includes(o)) s += cStruct(model, o);
  };
  for (const o of objects) if (o.isStruct) emitStruct(o);
  for (const o of objects) if (!o.isStruct) s += cTable(model, o);
  for (const svc of localServices(model)) {
    const p = cName(svc.name);
    s += `
/* ---- service ${svc.name} ---- */
${docComment(svc.doc, '', '//').replace(/^\/\/ (.*)$/gm, '/* $1 */')}
#define ${p}_HASH UINT64_C(${hex64(svc.hash)})
${svc.methods.map((m) => `static farcall_rpc_fn ${p}_${m.name}_fn;`).join('\n')}

/* Looks up the entries of ${svc.name} in backend \`backend\` (the name the host attached it under,
 * or NULL to find them by entry name alone) and checks that the backend was generated from the
 * same schema. Call it before farcall_ready(). Returns 0, or a negative FARCALL_RPC_E_* with
 * farcall_rpc_last_error() saying why. */
static inline int ${p}_connect(const char *backend) {
  static const farcall_rpc_method_id methods[] = {
${svc.methods.map((m) => `      {"${m.name}", "${m.entry}", UINT64_C(${hex64(m.hash)}), &${p}_${m.name}_fn},`).join('\n')}
  };
  return farcall_rpc_connect(backend, "${svc.name}", "${svc.idEntry}", ${p}_HASH, methods, sizeof methods / sizeof methods[0]);
}
`;
    for (const m of svc.methods) {
      s += `
${docComment(m.doc, '', '//').replace(/^\/\/ (.*)$/gm, '/* $1 */')}/* ${m.name}: \`request\` is a finished ${m.request.name} buffer (fc_finish()); the reply, a
 * ${m.response.name} buffer, is written into \`reply\` (read it with ${cName(m.response.name)}_as_root()).
 * Returns the reply's length, or a negative FARCALL_E_* / FARCALL_RPC_E_* (for
 * FARCALL_RPC_E_FAILED, farcall_rpc_error(reply, reply_cap, ...) gives the handler's message). */
static inline int64_t ${p}_${m.name}(const void *request, size_t request_len, void *reply, size_t reply_cap) {
  return farcall_rpc_call(${p}_${m.name}_fn, request, request_len, reply, reply_cap);
}
`;
    }
  }
  s += `
#ifdef __cplusplus
}
#endif
#endif /* ${g} */
`;
  return s;
}

function cStruct(model: Model, o: ObjectModel): string {
  const n = cName(o.name);
  let s = `\n/* ---- struct ${o.name} (${o.bytesize} bytes, inline) ---- */\n`;
  s += docComment(o.doc, '', '//').replace(/^\/\/ (.*)$/gm, '/* $1 */');
  s += `typedef struct ${n} { FC_ALIGNAS(${o.minalign}) uint8_t bytes[${o.bytesize}]; } ${n}_t;\n`;
  for (const f of o.fields) {
    const t = f.type;
    if (isScalar(t.base)) {
      const ct = t.index >= 0 && t.base !== BaseType.Bool ? `${cName(model.enums[t.index].name)}_t` : cScalarType(t.base);
      s += `static inline ${ct} ${n}_${f.name}(const ${n}_t *s) { ${ct} v; memcpy(&v, s->bytes + ${f.offset}, sizeof v); return v; }\n`;
      s += `static inline void ${n}_set_${f.name}(${n}_t *s, ${ct} v) { memcpy(s->bytes + ${f.offset}, &v, sizeof v); }\n`;
    } else if (t.base === BaseType.Obj) {
      const inner = cName(model.objects[t.index].name);
      s += `static inline const ${inner}_t *${n}_${f.name}(const ${n}_t *s) { return (const ${inner}_t *)(const void *)(s->bytes + ${f.offset}); }\n`;
      s += `static inline void ${n}_set_${f.name}(${n}_t *s, const ${inner}_t *v) { memcpy(s->bytes + ${f.offset}, v, sizeof *v); }\n`;
    } else if (t.base === BaseType.Array) {
      s += `/* ${f.name}: a fixed array of ${t.fixedLength} elements at byte ${f.offset} */\n`;
      s += `static inline const uint8_t *${n}_${f.name}(const ${n}_t *s) { return s->bytes + ${f.offset}; }\n`;
    }
  }
  return s;
}

function cTable(model: Model, o: ObjectModel): string {
  const n = cName(o.name);
  const T = `${n}_table_t`;
  let s = `\n/* ---- table ${o.name} ---- */\n`;
  s += docComment(o.doc, '', '//').replace(/^\/\/ (.*)$/gm, '/* $1 */');
  s += `/* The root table of a finished ${o.name} buffer. */
static inline const ${T} *${n}_as_root(const void *buf) { return (const ${T} *)fc_root(buf); }
`;
  const params: string[] = [];
  const adds: Array<{ order: number; text: string }> = [];
  let maxId = -1;
  for (const f of o.fields) {
    maxId = Math.max(maxId, f.id);
    if (f.deprecated) continue;
    const t = f.type;
    const fn = `${n}_${f.name}`;
    const at = `fc_field(t, ${f.offset})`;
    s += docComment(f.doc, '', '//').replace(/^\/\/ (.*)$/gm, '/* $1 */');
    s += `static inline bool ${fn}_is_present(const ${T} *t) { return ${at} != NULL; }\n`;
    if (isScalar(t.base)) {
      const raw = cScalarType(t.base === BaseType.Bool ? BaseType.UByte : t.base);
      const ct = t.base === BaseType.Bool ? 'bool' : t.index >= 0 ? `${cName(model.enums[t.index].name)}_t` : cScalarType(t.base);
      s += `static inline ${ct} ${fn}(const ${T} *t) {
  const uint8_t *p = ${at};
  ${raw} v = (${raw})${literal(t.base, f)};
  if (p) memcpy(&v, p, sizeof v);
  return ${t.base === BaseType.Bool ? 'v != 0' : 'v'};
}
`;
      params.push(`${ct} ${f.name}`);
      const size = scalarSize(t.base);
      const cond = f.optional ? '' : `if (${f.name} != (${ct})${literal(t.base, f)}) `;
      adds.push({ order: 8 - size, text: `  { ${raw} fc_v = (${raw})${f.name}; ${cond}fc_table_add(fc_b, ${f.id}, &fc_v, ${size}); }` });
    } else if (t.base === BaseType.String) {
      s += `static inline const char *${fn}(const ${T} *t) { return fc_string_at(${at}, NULL); }\n`;
      s += `static inline size_t ${fn}_len(const ${T} *t) { size_t n; fc_string_at(${at}, &n); return n; }\n`;
      params.push(`fc_ref ${f.name}`);
      adds.push({ order: -1, text: `  fc_table_add_ref(fc_b, ${f.id}, ${f.name});` });
    } else if (t.base === BaseType.Obj) {
      const sub = model.objects[t.index];
      if (sub.isStruct) {
        s += `static inline const ${cName(sub.name)}_t *${fn}(const ${T} *t) { return (const ${cName(sub.name)}_t *)(const void *)${at}; }\n`;
        params.push(`const ${cName(sub.name)}_t *${f.name}`);
        adds.push({ order: -2, text: `  fc_table_add_struct(fc_b, ${f.id}, ${f.name}, ${sub.bytesize}, ${sub.minalign});` });
      } else {
        s += `static inline const ${cName(sub.name)}_table_t *${fn}(const ${T} *t) { return (const ${cName(sub.name)}_table_t *)fc_deref(${at}); }\n`;
        params.push(`fc_ref ${f.name}`);
        adds.push({ order: -1, text: `  fc_table_add_ref(fc_b, ${f.id}, ${f.name});` });
      }
    } else if (t.base === BaseType.Union) {
      const e = model.enums[t.index];
      s += `static inline const void *${fn}(const ${T} *t) { return fc_deref(${at}); }\n`;
      for (const v of e.values) {
        if (v.objectIndex < 0) continue;
        const sub = model.objects[v.objectIndex];
        s += `static inline const ${cName(sub.name)}_table_t *${fn}_as_${v.name}(const ${T} *t) {\n  return ${fn}_type(t) == ${cName(e.name)}_${v.name} ? (const ${cName(sub.name)}_table_t *)${fn}(t) : NULL;\n}\n`;
      }
      params.push(`fc_ref ${f.name}`);
      adds.push({ order: -1, text: `  fc_table_add_ref(fc_b, ${f.id}, ${f.name});` });
    } else if (t.base === BaseType.Vector) {
      const el = t.element;
      s += `static inline size_t ${fn}_len(const ${T} *t) { return fc_vec_len(${at}); }\n`;
      if (isScalar(el)) {
        const ct = el === BaseType.Bool ? 'uint8_t' : t.index >= 0 ? `${cName(model.enums[t.index].name)}_t` : cScalarType(el);
        s += `static inline const ${ct} *${fn}(const ${T} *t) { return (const ${ct} *)(const void *)fc_vec_data(${at}); }\n`;
        s += `static inline ${ct} ${fn}_at(const ${T} *t, size_t i) { ${ct} v; memcpy(&v, fc_vec_data(${at}) + i * sizeof v, sizeof v); return v; }\n`;
      } else if (el === BaseType.String) {
        s += `static inline const char *${fn}_at(const ${T} *t, size_t i) { return (const char *)fc_vec_ref(${at}, i) + 4; }\n`;
      } else if (el === BaseType.Obj) {
        const sub = model.objects[t.index];
        if (sub.isStruct) {
          s += `static inline const ${cName(sub.name)}_t *${fn}(const ${T} *t) { return (const ${cName(sub.name)}_t *)(const void *)fc_vec_data(${at}); }\n`;
          s += `static inline const ${cName(sub.name)}_t *${fn}_at(const ${T} *t, size_t i) { return ${fn}(t) + i; }\n`;
        } else {
          s += `static inline const ${cName(sub.name)}_table_t *${fn}_at(const ${T} *t, size_t i) { return (const ${cName(sub.name)}_table_t *)fc_vec_ref(${at}, i); }\n`;
        }
      } else {
        throw new GenError(`${o.file}: ${o.name}.${f.name}: vectors of unions are not supported by the C generator (use --lang without c, or wrap the union in a table)`);
      }
      params.push(`fc_ref ${f.name}`);
      adds.push({ order: -1, text: `  fc_table_add_ref(fc_b, ${f.id}, ${f.name});` });
    } else {
      throw new GenError(`${o.file}: ${o.name}.${f.name}: field type ${t.base} is not supported by the C generator`);
    }
  }
  adds.sort((a, b) => a.order - b.order);
  s += `/* Builds a ${o.name}: strings, vectors and tables as fc_ref made earlier with \`fc_b\` (0: absent)${
    params.some((p) => p.startsWith('const ')) ? ', structs by pointer (NULL: absent)' : ''}. */
static inline fc_ref ${n}_create(fc_builder *fc_b${params.map((p) => `, ${p}`).join('')}) {
  fc_table_start(fc_b, ${maxId + 1});
${adds.map((a) => a.text).join('\n')}
  return fc_table_end(fc_b);
}
`;
  return s;
}
