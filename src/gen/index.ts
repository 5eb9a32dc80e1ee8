// farcall-gen: from FlatBuffers schemas with rpc_service blocks to host stubs (TypeScript),
// client headers (C++, C) and server skeletons (C++). flatc writes the table code and the
// reflection; this module reads the reflection and writes the rest.
//
// Output layout under `out`:
//   ts/      flatc --ts --gen-object-api output, farcall_rpc.ts, <schema>_farcall.ts
//   cpp/     flatc --cpp output (incl. farcall_generated.h), farcall_rpc.hpp, farcall_rpc.h,
//            <schema>_farcall_client.hpp (lang cpp), <schema>_farcall_server.hpp (lang server)
//   c/       farcall_rpc.h, <schema>_farcall.h
import * as fs from 'fs';
import * as path from 'path';

import { emitC } from './emit_c';
import { emitCppClient, emitCppServer } from './emit_cpp';
import { emitTs } from './emit_ts';
import { GenError } from './errors';
import { flatc, flatcVersion, reflect } from './flatc';
import { Model, readModel } from './model';
import { localServices, schemaBase } from './names';

export { GenError } from './errors';
export { fnv1a64, readModel } from './model';
export type { Model, ServiceModel, MethodModel } from './model';
export { GENERATOR, GENERATOR_VERSION } from './version';

export type Lang = 'ts' | 'cpp' | 'c' | 'server';
export const ALL_LANGS: Lang[] = ['ts', 'cpp', 'c', 'server'];

export interface GenOptions {
  out: string;
  langs?: Lang[];
  /** Extra include folders for flatc (-I). The schema's own folder is always searched. */
  includes?: string[];
}

export interface GenResult {
  /** Every file written or left unchanged, absolute. */
  files: string[];
  models: Model[];
}

/** The folder holding idl/farcall.fbs and src/gen/runtime (this package's root). */
export function packageDir(): string {
  let d = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(d, 'idl', 'farcall.fbs')) && fs.existsSync(path.join(d, 'src', 'gen', 'runtime'))) return d;
    d = path.dirname(d);
  }
  throw new GenError(`cannot find farcall's idl/farcall.fbs above ${__dirname}`);
}

export function parseLangs(spec: string): Lang[] {
  const langs = spec.split(',').map((l) => l.trim()).filter(Boolean);
  for (const l of langs)
    if (!ALL_LANGS.includes(l as Lang)) throw new GenError(`unknown language "${l}" (choose from ${ALL_LANGS.join(', ')})`);
  return langs as Lang[];
}

/** Writes `text` unless the file already holds exactly it (keeps timestamps for incremental builds). */
function put(file: string, text: string, files: string[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let old: string | undefined;
  try {
    old = fs.readFileSync(file, 'utf8');
  } catch {
    old = undefined;
  }
  if (old !== text) fs.writeFileSync(file, text);
  files.push(file);
}

/** Reads and checks one schema without writing anything. */
export function loadSchema(schema: string, includes: string[] = []): Model {
  const abs = path.resolve(schema);
  if (!fs.existsSync(abs)) throw new GenError(`${schema}: no such file`);
  if (!abs.endsWith('.fbs')) throw new GenError(`${schema}: a schema must end in .fbs`);
  const bfbs = reflect(abs, includes.map((i) => path.resolve(i)));
  return readModel(bfbs, abs, path.dirname(abs));
}

/**
 * flatc 2.0.8's TypeScript object API reads a vector of strings with
 * `createScalarList(this.tags.bind(this), ...)`, whose overloaded accessor (string | Uint8Array)
 * npm flatbuffers 25 no longer accepts as a string list under --strict. Bind the string overload.
 */
export function patchFlatcTs(text: string): string {
  return text.replace(/createScalarList\(this\.(\w+)\.bind\(this\), /g, (all, name: string) =>
    text.includes(`${name}(index: number):string\n`) ? `createScalarList<string>((i: number) => this.${name}(i), ` : all);
}

/**
 * Generated TypeScript takes the flatbuffers runtime from farcall ('farcall/flatbuffers'), so the
 * project that compiles it resolves it through its farcall dependency and declares nothing more.
 */
export function useFarcallFlatbuffers(text: string): string {
  return text.replace(/from 'flatbuffers';/g, "from 'farcall/flatbuffers';");
}

/** flatc into a temporary folder, then into `dir` only the files that changed. */
function flatcInto(dir: string, args: string[], schema: string, files: string[]): void {
  const tmp = fs.mkdtempSync(path.join(require('os').tmpdir(), 'farcall-flatc-'));
  try {
    flatc([...args, '-o', tmp, schema], schema);
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else {
          const text = fs.readFileSync(p, 'utf8');
          put(path.join(dir, path.relative(tmp, p)), p.endsWith('.ts') ? patchFlatcTs(useFarcallFlatbuffers(text)) : text, files);
        }
      }
    };
    walk(tmp);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function generate(schemas: string[], opts: GenOptions): GenResult {
  if (!schemas.length) throw new GenError('no schema given');
  const langs = opts.langs ?? ALL_LANGS;
  flatcVersion();
  const root = packageDir();
  const idl = path.join(root, 'idl', 'farcall.fbs');
  const runtime = path.join(root, 'src', 'gen', 'runtime');
  const out = path.resolve(opts.out);
  const files: string[] = [];
  const models = schemas.map((s) => loadSchema(s, opts.includes));
  for (const m of models) {
    if (schemaBase(m.schemaFile) === 'farcall') throw new GenError(`${m.schemaFile}: the name farcall.fbs is reserved for farcall's own idl/farcall.fbs`);
  }
  // Entry names must be unique across everything generated together.
  const entries = new Map<string, string>();
  for (const m of models)
    for (const svc of localServices(m))
      for (const e of [svc.idEntry, ...svc.methods.map((x) => x.entry)]) {
        const prev = entries.get(e);
        if (prev) throw new GenError(`${m.schemaFile}: entry point ${e} of ${svc.name} collides with one of ${prev}; rename a service`);
        entries.set(e, svc.name);
      }
  const flatcIncludes = (schema: string) => ['-I', path.dirname(schema), ...(opts.includes ?? []).flatMap((i) => ['-I', path.resolve(i)])];
  if (langs.includes('ts')) {
    const dir = path.join(out, 'ts');
    flatcInto(dir, ['--ts', '--gen-object-api'], idl, files);
    put(path.join(dir, 'farcall_rpc.ts'), fs.readFileSync(path.join(runtime, 'farcall_rpc.ts.in'), 'utf8'), files);
    for (const m of models) {
      flatcInto(dir, ['--ts', '--gen-object-api', ...flatcIncludes(m.schemaFile)], m.schemaFile, files);
      if (localServices(m).length) put(path.join(dir, `${schemaBase(m.schemaFile)}_farcall.ts`), emitTs(m), files);
    }
  }
  if (langs.includes('cpp') || langs.includes('server')) {
    const dir = path.join(out, 'cpp');
    flatcInto(dir, ['--cpp'], idl, files);
    put(path.join(dir, 'farcall_rpc.hpp'), fs.readFileSync(path.join(runtime, 'farcall_rpc.hpp'), 'utf8'), files);
    put(path.join(dir, 'farcall_rpc.h'), fs.readFileSync(path.join(runtime, 'farcall_rpc.h'), 'utf8'), files);
    for (const m of models) {
      flatcInto(dir, ['--cpp', ...flatcIncludes(m.schemaFile)], m.schemaFile, files);
      if (!localServices(m).length) continue;
      if (langs.includes('cpp')) put(path.join(dir, `${schemaBase(m.schemaFile)}_farcall_client.hpp`), emitCppClient(m), files);
      if (langs.includes('server')) put(path.join(dir, `${schemaBase(m.schemaFile)}_farcall_server.hpp`), emitCppServer(m), files);
    }
  }
  if (langs.includes('c')) {
    const dir = path.join(out, 'c');
    put(path.join(dir, 'farcall_rpc.h'), fs.readFileSync(path.join(runtime, 'farcall_rpc.h'), 'utf8'), files);
    for (const m of models) put(path.join(dir, `${schemaBase(m.schemaFile)}_farcall.h`), emitC(m), files);
  }
  return { files, models };
}
