// The generator's view of a schema: read from flatc's binary reflection (.bfbs) through npm
// `flatbuffers_reflection`, fields ordered by id, methods in declaration order, each method
// with a stable identity hash. No FlatBuffers text is parsed here: flatc does that.
import * as fs from 'fs';

import { ByteBuffer } from 'flatbuffers';
import { BaseType, Schema } from 'flatbuffers_reflection';

import { GenError } from './errors';

export { BaseType };

export interface TypeModel {
  base: BaseType;
  /** Element type of a vector or array. */
  element: BaseType;
  /** Object or enum index (into Model.objects / Model.enums) for Obj, Union, UType and enum-typed scalars; -1 otherwise. */
  index: number;
  fixedLength: number;
}

export interface FieldModel {
  name: string;
  id: number;
  /** vtable offset (4 + 2 * id) for tables; byte offset inside the struct for structs. */
  offset: number;
  type: TypeModel;
  defaultInteger: bigint;
  defaultReal: number;
  deprecated: boolean;
  required: boolean;
  optional: boolean;
  padding: number;
  doc: string[];
}

export interface ObjectModel {
  /** Fully qualified, e.g. "kv.GetRequest". */
  name: string;
  namespace: string[];
  short: string;
  isStruct: boolean;
  bytesize: number;
  minalign: number;
  fields: FieldModel[];
  file: string;
  doc: string[];
}

export interface EnumValueModel {
  name: string;
  value: bigint;
  /** For unions: index of the table this member carries (-1 for NONE). */
  objectIndex: number;
}

export interface EnumModel {
  name: string;
  namespace: string[];
  short: string;
  isUnion: boolean;
  underlying: BaseType;
  values: EnumValueModel[];
  file: string;
  doc: string[];
}

export interface MethodModel {
  name: string;
  /** The backend entry point: "<Service>_<Method>" (entries cannot contain '.'). */
  entry: string;
  request: ObjectModel;
  response: ObjectModel;
  /** FNV-1a 64 of `canonical`. */
  hash: bigint;
  canonical: string;
  attributes: Record<string, string>;
  doc: string[];
  line: number;
}

export interface ServiceModel {
  name: string;
  namespace: string[];
  short: string;
  methods: MethodModel[];
  /** FNV-1a 64 over the method hashes in name order. */
  hash: bigint;
  /** The identity entry point: "<Service>__farcall_id". */
  idEntry: string;
  file: string;
  doc: string[];
}

export interface Model {
  /** The schema file as given on the command line (absolute). */
  schemaFile: string;
  objects: ObjectModel[];
  enums: EnumModel[];
  services: ServiceModel[];
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/** FNV-1a, 64-bit, over the UTF-8 bytes of `s`. */
export function fnv1a64(s: string): bigint {
  let h = FNV_OFFSET;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= BigInt(b);
    h = (h * FNV_PRIME) & MASK64;
  }
  return h;
}

export const BASE_NAMES: Record<number, string> = {
  [BaseType.None]: 'none', [BaseType.UType]: 'utype', [BaseType.Bool]: 'bool', [BaseType.Byte]: 'byte',
  [BaseType.UByte]: 'ubyte', [BaseType.Short]: 'short', [BaseType.UShort]: 'ushort', [BaseType.Int]: 'int',
  [BaseType.UInt]: 'uint', [BaseType.Long]: 'long', [BaseType.ULong]: 'ulong', [BaseType.Float]: 'float',
  [BaseType.Double]: 'double', [BaseType.String]: 'string', [BaseType.Vector]: 'vector', [BaseType.Obj]: 'obj',
  [BaseType.Union]: 'union', [BaseType.Array]: 'array',
};

export function isScalar(t: BaseType): boolean {
  return t >= BaseType.UType && t <= BaseType.Double;
}

export function scalarSize(t: BaseType): number {
  switch (t) {
    case BaseType.UType: case BaseType.Bool: case BaseType.Byte: case BaseType.UByte: return 1;
    case BaseType.Short: case BaseType.UShort: return 2;
    case BaseType.Int: case BaseType.UInt: case BaseType.Float: return 4;
    case BaseType.Long: case BaseType.ULong: case BaseType.Double: return 8;
    default: return 4;
  }
}

function docs(n: number, get: (i: number) => string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(get(i).trim());
  return out;
}

function splitName(full: string): { namespace: string[]; short: string } {
  const parts = full.split('.');
  return { short: parts.pop()!, namespace: parts };
}

/** Line (1-based) of the first match of `re` in `file` at or after line `from`; 0 if none. */
function findLine(file: string, re: RegExp, from = 1): number {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  const lines = text.split('\n');
  for (let i = from - 1; i < lines.length; i++) if (re.test(lines[i].replace(/\/\/.*$/, ''))) return i + 1;
  return 0;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Reads flatc's .bfbs for `schemaFile` into a Model. `declDir` resolves the "//file.fbs" names flatc records. */
export function readModel(bfbs: Uint8Array, schemaFile: string, declDir: string): Model {
  const schema = Schema.getRootAsSchema(new ByteBuffer(bfbs));
  const resolveFile = (f: string | null): string => {
    if (!f) return schemaFile;
    return f.startsWith('//') ? `${declDir}/${f.slice(2)}` : f;
  };
  const objects: ObjectModel[] = [];
  for (let i = 0; i < schema.objectsLength(); i++) {
    const o = schema.objects(i)!;
    const name = o.name()!;
    const fields: FieldModel[] = [];
    for (let j = 0; j < o.fieldsLength(); j++) {
      const f = o.fields(j)!;
      const t = f.type()!;
      fields.push({
        name: f.name()!,
        id: f.id(),
        offset: f.offset(),
        type: { base: t.baseType(), element: t.element(), index: t.index(), fixedLength: t.fixedLength() },
        defaultInteger: f.defaultInteger(),
        defaultReal: f.defaultReal(),
        deprecated: f.deprecated(),
        required: f.required(),
        optional: f.optional(),
        padding: f.padding(),
        doc: docs(f.documentationLength(), (k) => f.documentation(k)),
      });
    }
    fields.sort((a, b) => a.id - b.id);
    objects.push({
      name, ...splitName(name), isStruct: o.isStruct(), bytesize: o.bytesize(), minalign: o.minalign(), fields,
      file: resolveFile(o.declarationFile()), doc: docs(o.documentationLength(), (k) => o.documentation(k)),
    });
  }

  const enums: EnumModel[] = [];
  for (let i = 0; i < schema.enumsLength(); i++) {
    const e = schema.enums(i)!;
    const values: EnumValueModel[] = [];
    for (let j = 0; j < e.valuesLength(); j++) {
      const v = e.values(j)!;
      const ut = v.unionType();
      values.push({ name: v.name()!, value: v.value(), objectIndex: ut && ut.baseType() === BaseType.Obj ? ut.index() : -1 });
    }
    values.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    const name = e.name()!;
    enums.push({
      name, ...splitName(name), isUnion: e.isUnion(), underlying: e.underlyingType()!.baseType(), values,
      file: resolveFile(e.declarationFile()), doc: docs(e.documentationLength(), (k) => e.documentation(k)),
    });
  }

  const model: Model = { schemaFile, objects, enums, services: [] };
  for (let i = 0; i < schema.servicesLength(); i++) {
    const s = schema.services(i)!;
    const name = s.name()!;
    const { namespace, short } = splitName(name);
    const file = resolveFile(s.declarationFile());
    const svcLine = findLine(file, new RegExp(`\\brpc_service\\s+${escapeRe(short)}\\b`));
    const methods: MethodModel[] = [];
    for (let j = 0; j < s.callsLength(); j++) {
      const c = s.calls(j)!;
      const mname = c.name()!;
      const line = findLine(file, new RegExp(`(^|[\\s{;])${escapeRe(mname)}\\s*\\(`), svcLine || 1);
      const attributes: Record<string, string> = {};
      for (let k = 0; k < c.attributesLength(); k++) {
        const kv = c.attributes(k)!;
        attributes[kv.key()!] = kv.value() ?? '';
      }
      const req = c.request()!;
      const resp = c.response()!;
      const where = `${file}:${line || svcLine || 1}`;
      const reqObj = objects.find((o) => o.name === req.name());
      const respObj = objects.find((o) => o.name === resp.name());
      if (!reqObj || !respObj) throw new GenError(`${where}: rpc ${short}.${mname}: request or response type not found in the reflection data`);
      for (const [what, o] of [['request', reqObj], ['response', respObj]] as const)
        if (o.isStruct) throw new GenError(`${where}: rpc ${short}.${mname}: the ${what} type ${o.name} is a struct; requests and responses must be tables`);
      const streaming = attributes['streaming'];
      if (streaming !== undefined && streaming !== 'none')
        throw new GenError(`${where}: rpc ${short}.${mname}: attribute streaming: "${streaming}" is not supported; farcall calls are unary (one request table, one response table)`);
      for (const a of Object.keys(attributes))
        if (a !== 'streaming' && a !== 'idempotent')
          throw new GenError(`${where}: rpc ${short}.${mname}: attribute ${a} is not supported by farcall gen (supported: idempotent, streaming: "none")`);
      const entry = `${short}_${mname}`;
      if (entry.length > 128) throw new GenError(`${where}: entry point name ${entry} is longer than 128 characters`);
      methods.push({
        name: mname, entry, request: reqObj, response: respObj, hash: 0n, canonical: '', attributes,
        doc: docs(c.documentationLength(), (k) => c.documentation(k)), line,
      });
    }
    methods.sort((a, b) => (a.line && b.line ? a.line - b.line : a.name < b.name ? -1 : 1));
    const svc: ServiceModel = {
      name, namespace, short, methods, hash: 0n, idEntry: `${short}__farcall_id`, file,
      doc: docs(s.documentationLength(), (k) => s.documentation(k)),
    };
    for (const m of methods) {
      m.canonical = canonicalMethod(model, svc, m);
      m.hash = fnv1a64(m.canonical);
    }
    svc.hash = fnv1a64([...methods].sort((a, b) => (a.name < b.name ? -1 : 1)).map((m) => `${m.name}=${hex64(m.hash)}`).join(';'));
    model.services.push(svc);
  }
  return model;
}

export function hex64(v: bigint): string {
  return '0x' + v.toString(16).padStart(16, '0');
}

/** The canonical text a method's identity hash is computed over. Comments and declaration order do not enter it. */
export function canonicalMethod(model: Model, svc: ServiceModel, m: MethodModel): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  const typeText = (t: TypeModel): string => {
    const named = (base: BaseType): string => {
      if (base === BaseType.Obj) return model.objects[t.index].name;
      if ((base === BaseType.Union || base === BaseType.UType || isScalar(base)) && t.index >= 0) return `${BASE_NAMES[base]}:${model.enums[t.index].name}`;
      return BASE_NAMES[base];
    };
    if (t.base === BaseType.Vector) return `[${named(t.element)}]`;
    if (t.base === BaseType.Array) return `[${named(t.element)}:${t.fixedLength}]`;
    return named(t.base);
  };
  const visitEnum = (i: number) => {
    const e = model.enums[i];
    if (seen.has(e.name)) return;
    seen.add(e.name);
    parts.push(`${e.isUnion ? 'union' : 'enum'} ${e.name}:${BASE_NAMES[e.underlying]}{${e.values.map((v) => `${v.name}=${v.value}`).join(',')}}`);
    for (const v of e.values) if (v.objectIndex >= 0) visitObject(v.objectIndex);
  };
  const visitObject = (i: number) => {
    const o = model.objects[i];
    if (seen.has(o.name)) return;
    seen.add(o.name);
    const fields = o.fields.map((f) => {
      const flags = [f.deprecated ? 'deprecated' : '', f.required ? 'required' : '', f.optional ? 'optional' : ''].filter(Boolean).join(',');
      const def = isScalar(f.type.base) ? (f.type.base === BaseType.Float || f.type.base === BaseType.Double ? `=${f.defaultReal}` : `=${f.defaultInteger}`) : '';
      return `${f.id}:${f.name}:${typeText(f.type)}${def}${flags ? `(${flags})` : ''}`;
    });
    parts.push(`${o.isStruct ? 'struct' : 'table'} ${o.name}{${fields.join(';')}}`);
    for (const f of o.fields) {
      if (f.type.index < 0) continue;
      const b = f.type.base === BaseType.Vector || f.type.base === BaseType.Array ? f.type.element : f.type.base;
      if (b === BaseType.Obj) visitObject(f.type.index);
      else visitEnum(f.type.index);
    }
  };
  const reqIdx = model.objects.indexOf(m.request);
  const respIdx = model.objects.indexOf(m.response);
  const head = `service ${svc.name} method ${m.name} request ${m.request.name} response ${m.response.name}`;
  visitObject(reqIdx);
  visitObject(respIdx);
  return [head, ...parts].join('\n');
}
