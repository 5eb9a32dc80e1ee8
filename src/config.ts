// Broker configuration: what to load, with which limits, which pool may call which backend,
// and what the HTTP front exposes. Read from code, JSON or TOML, checked with a zod schema:
// every bad field is reported at once, each with its path, in one ConfigError.
import { constants as bufferConstants } from 'buffer';
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';

import { RestartPolicy } from './backend';
import { ConfigError } from './errors';
import { FilesOptions, scratchProblem } from './run';

export interface BackendConfig {
  /** Path of the backend program (built with farcall_add_program(... BACKEND)). */
  program?: string;
  /**
   * A backend snapshot file: when it exists, the backend is restored from it instead of run
   * from `program` (one of the two is required). With `snapshotEveryMs` the backend writes its
   * state there periodically, and its restarts start from the latest one.
   */
  snapshot?: string;
  snapshotEveryMs?: number;
  instances?: number;
  memoryMiB?: number;
  /** A directory (relative to the config file) the backend sees read-only as "/". */
  files?: FilesOptions;
  callTimeoutMs?: number;
  initTimeoutMs?: number;
  args?: string[];
  env?: Record<string, string>;
  /** Network destinations ("host:port", numeric IPv4) the backend may connect to; nothing else. */
  network?: { allow: string[] };
  restart?: RestartPolicy;
  /** In-guest calls on PVM hosts; the backend can take over its callers' VMs (BackendOptions.trusted). */
  trusted?: boolean;
  /** What a failed call takes with it: 'call' (default, its own writes) or 'instance' (BackendOptions.durability). */
  durability?: 'call' | 'instance';
  /** Entry flavor of the backend's VMs (BackendOptions.entry). */
  entry?: 'trap-page' | 'out-stub' | 'pvm-native';
}

export interface PoolConfig {
  /** Path of the request program (calls farcall_ready()); or `snapshot`, not both. */
  program?: string;
  /** A pool snapshot file (`farcall snapshot`): the pool starts from it without running the program. */
  snapshot?: string;
  size?: number;
  concurrency?: number;
  timeoutMs?: number;
  initTimeoutMs?: number;
  memoryMiB?: number;
  /** A directory (relative to the config file) the program sees read-only as "/". */
  files?: FilesOptions;
  maxDirtyMiB?: number;
  maxQueue?: number;
  maxResponseBytes?: number;
  /** Guest threads alive at once per VM (RequestPoolOptions.maxThreads). */
  maxThreads?: number;
  /** Address space beyond memoryMiB (RequestPoolOptions.reserveMiB). */
  reserveMiB?: number;
  /** Entry flavor of the pool's VMs (RequestPoolOptions.entry). */
  entry?: 'trap-page' | 'out-stub' | 'pvm-native';
  /** Names of the backends this pool's program may call. */
  backends?: string[];
  args?: string[];
  env?: Record<string, string>;
}

/** The HTTP front (`farcall serve`, serveHttp). */
export interface HttpConfig {
  /** Backend entries callable at POST /backends/:backend/:entry, as "backend.entry". Default none. */
  expose?: string[];
  /** Bearer token every request but GET /healthz must present; required beyond loopback. */
  token?: string;
  /** Largest request body in bytes (413 above it). Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Longest time to receive a request, headers and body (408 beyond it). Default 30000. */
  requestTimeoutMs?: number;
}

export interface BrokerConfig {
  backends?: Record<string, BackendConfig>;
  pools?: Record<string, PoolConfig>;
  http?: HttpConfig;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Tokens shorter than this are refused: they can be guessed. */
export const MIN_TOKEN_LENGTH = 16;

const got = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

// An object that refuses fields it does not know, and says which ones it knows.
function strict<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys' ? `unknown field (expected one of: ${Object.keys(shape).join(', ')})` : undefined,
  });
}

function whole(min: number, max: number, even = false) {
  const msg = (iss: { input?: unknown }) => `must be ${even ? 'an even' : 'a'} whole number from ${min} to ${max}, got ${got(iss.input)}`;
  const n = z.int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
  return even ? n.refine((v) => v % 2 === 0, { error: msg }) : n;
}

const strings = z.array(z.string({ error: 'must be a string' }), { error: 'must be a list of strings' });
const stringMap = z.record(z.string(), z.string({ error: 'must be a string' }), { error: 'must be an object of strings' });

function endpointOk(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(s);
  return !!m && m.slice(1, 5).every((x) => Number(x) <= 255) && Number(m[5]) >= 1 && Number(m[5]) <= 65535;
}

function schema(baseDir: string) {
  const program = z
    .string({ error: 'must be the path of a program' })
    .min(1, { error: 'must be the path of a program' })
    .transform((p) => path.resolve(baseDir, p))
    .refine((p) => fs.existsSync(p), { error: (iss) => `no such file: ${iss.input}` });
  const entry = z.enum(['trap-page', 'out-stub', 'pvm-native'], { error: 'must be trap-page, out-stub or pvm-native' });
  const files = strict({
    readOnly: z
      .string({ error: 'must be the path of a directory' })
      .transform((p) => path.resolve(baseDir, p))
      .refine((p) => fs.existsSync(p) && fs.statSync(p).isDirectory(), { error: (iss) => `no such directory: ${iss.input}` })
      .optional(),
    // Checked by the same function the API uses (src/run.ts), so both say the same thing.
    scratch: z
      .unknown()
      .superRefine((v, ctx) => {
        const problem = v === undefined ? undefined : scratchProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .transform((v) => v as FilesOptions['scratch'])
      .optional(),
  });
  const snapshot = z
    .string({ error: 'must be the path of a snapshot file' })
    .min(1, { error: 'must be the path of a snapshot file' })
    .transform((p) => path.resolve(baseDir, p));
  const backend = strict({
    program: program.optional(),
    snapshot: snapshot.optional(),
    snapshotEveryMs: whole(10, 1e9).optional(),
    instances: whole(1, 64).optional(),
    memoryMiB: whole(4, 16384, true).optional(),
    files: files.optional(),
    callTimeoutMs: whole(1, 3600000).optional(),
    initTimeoutMs: whole(1, 3600000).optional(),
    args: strings.optional(),
    env: stringMap.optional(),
    network: strict({
      allow: z.array(z.string().refine(endpointOk, { error: (iss) => `${got(iss.input)} is not a numeric IPv4 "a.b.c.d:port"` })),
    }).optional(),
    restart: strict({
      maxFaults: whole(1, 1e6).optional(),
      windowMs: whole(1, 1e9).optional(),
      backoffMs: whole(0, 1e9).optional(),
      maxBackoffMs: whole(0, 1e9).optional(),
    }).optional(),
    trusted: z.boolean({ error: 'must be true or false' }).optional(),
    durability: z.enum(['call', 'instance'], { error: "must be 'call' or 'instance'" }).optional(),
    entry: entry.optional(),
  });
  const pool = strict({
    program: program.optional(),
    snapshot: snapshot.refine((p) => fs.existsSync(p), { error: (iss) => `no such file: ${iss.input}` }).optional(),
    size: whole(1, 256).optional(),
    concurrency: whole(1, 256).optional(),
    timeoutMs: whole(1, 3600000).optional(),
    initTimeoutMs: whole(1, 3600000).optional(),
    memoryMiB: whole(4, 65536, true).optional(),
    files: files.optional(),
    maxDirtyMiB: whole(1, 65536).optional(),
    maxQueue: whole(0, 1e6).optional(),
    maxResponseBytes: whole(0, bufferConstants.MAX_LENGTH).optional(),
    maxThreads: whole(1, 4096).optional(),
    reserveMiB: whole(0, 65536, true).optional(),
    entry: entry.optional(),
    backends: strings.optional(),
    args: strings.optional(),
    env: stringMap.optional(),
  });
  const http = strict({
    expose: strings.optional(),
    token: z.string({ error: 'must be a string' }).min(MIN_TOKEN_LENGTH, { error: `must be at least ${MIN_TOKEN_LENGTH} characters` }).optional(),
    bodyLimitBytes: whole(1, 64 << 20).optional(),
    requestTimeoutMs: whole(1, 3600000).optional(),
  });
  const named = <T extends z.ZodType>(s: T) => z.record(z.string(), s, { error: 'must be an object of named entries' });
  return strict({ backends: named(backend).optional(), pools: named(pool).optional(), http: http.optional() });
}

interface Issue {
  path: string;
  message: string;
}

function pathText(p: ReadonlyArray<PropertyKey>): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s || '(top)';
}

// What the schema cannot see field by field: names and references between sections.
function crossChecks(raw: unknown, baseDir: string): Issue[] {
  const out: Issue[] = [];
  const top = (raw ?? {}) as Record<string, unknown>;
  const section = (k: string) => (typeof top[k] === 'object' && top[k] !== null && !Array.isArray(top[k]) ? (top[k] as Record<string, unknown>) : {});
  const backends = section('backends');
  const pools = section('pools');
  for (const [kind, sec] of [['backend', backends], ['pool', pools]] as const) {
    for (const name of Object.keys(sec))
      if (!NAME.test(name)) out.push({ path: `${kind}s.${name}`, message: `${kind} names are identifiers (letters, digits, _)` });
  }
  // Where each comes from: a program, a snapshot, or (backends) a snapshot if there is one yet.
  const has = (o: unknown, k: string) => typeof o === 'object' && o !== null && (o as Record<string, unknown>)[k] !== undefined;
  for (const [name, b] of Object.entries(backends)) {
    if (!has(b, 'program') && !has(b, 'snapshot')) out.push({ path: `backends.${name}`, message: 'needs a program or a snapshot' });
    else if (!has(b, 'program') && typeof (b as BackendConfig).snapshot === 'string' && !fs.existsSync(path.resolve(baseDir, (b as BackendConfig).snapshot!)))
      out.push({ path: `backends.${name}.snapshot`, message: `no such file: ${(b as BackendConfig).snapshot} (and no program to start from)` });
    for (const k of ['instances', 'memoryMiB', 'initTimeoutMs', 'args', 'env', 'entry'])
      if (!has(b, 'program') && has(b, k)) out.push({ path: `backends.${name}.${k}`, message: 'comes from the snapshot (leave it out)' });
    if (has(b, 'snapshotEveryMs') && !has(b, 'snapshot')) out.push({ path: `backends.${name}.snapshotEveryMs`, message: 'needs a snapshot path to write to' });
  }
  for (const [name, p] of Object.entries(pools)) {
    if (has(p, 'program') === has(p, 'snapshot')) out.push({ path: `pools.${name}`, message: 'needs a program or a snapshot (one of the two)' });
    for (const k of ['memoryMiB', 'initTimeoutMs', 'args', 'env', 'entry', 'maxThreads', 'reserveMiB'])
      if (has(p, 'snapshot') && has(p, k)) out.push({ path: `pools.${name}.${k}`, message: 'comes from the snapshot (leave it out)' });
  }
  const known = Object.keys(backends).join(', ') || 'none';
  for (const [name, p] of Object.entries(pools)) {
    const list = (p as { backends?: unknown })?.backends;
    if (!Array.isArray(list)) continue;
    list.forEach((b, i) => {
      if (typeof b === 'string' && !(b in backends))
        out.push({ path: `pools.${name}.backends[${i}]`, message: `no backend named ${JSON.stringify(b)} in this config (backends: ${known})` });
    });
  }
  const expose = (section('http') as { expose?: unknown }).expose;
  if (Array.isArray(expose)) {
    expose.forEach((e, i) => {
      if (typeof e !== 'string') return;
      const dot = e.indexOf('.');
      if (dot < 1 || dot === e.length - 1) out.push({ path: `http.expose[${i}]`, message: `${JSON.stringify(e)} is not "backend.entry"` });
      else if (!(e.slice(0, dot) in backends))
        out.push({ path: `http.expose[${i}]`, message: `no backend named ${JSON.stringify(e.slice(0, dot))} in this config (backends: ${known})` });
    });
  }
  return out;
}

function configError(issues: Issue[], where: string): ConfigError {
  const lines = issues.map((i) => `config ${i.path}: ${i.message}`);
  const head = issues.length === 1 ? lines[0] : `${where} has ${issues.length} errors:\n  ${lines.join('\n  ')}`;
  return new ConfigError('InvalidArgument', head, { issues });
}

/** Checks a configuration object and resolves program paths against `baseDir`. */
export function validateConfig(raw: unknown, baseDir = process.cwd(), where = 'config'): BrokerConfig {
  const r = schema(baseDir).safeParse(raw, { reportInput: true });
  const issues: Issue[] = [];
  for (const iss of r.error?.issues ?? []) {
    // One line per unknown field, at the field's own path.
    if (iss.code === 'unrecognized_keys') for (const k of iss.keys) issues.push({ path: pathText([...iss.path, k]), message: iss.message });
    else issues.push({ path: pathText(iss.path), message: iss.message });
  }
  issues.push(...crossChecks(raw, baseDir));
  if (issues.length) throw configError(issues, where);
  const cfg = r.data as BrokerConfig;
  return { backends: cfg.backends ?? {}, pools: cfg.pools ?? {}, ...(cfg.http ? { http: cfg.http } : {}) };
}

const PARSERS: Record<string, [string, (text: string) => unknown]> = {
  '.json': ['JSON', JSON.parse],
  '.toml': ['TOML', (t) => require('smol-toml').parse(t)],
};

/** Reads a .json or .toml configuration file; relative program paths are relative to it. */
export function loadConfigFile(file: string): BrokerConfig {
  const ext = path.extname(file).toLowerCase();
  const parser = PARSERS[ext];
  if (!parser)
    throw new ConfigError('InvalidArgument', `config ${file}: unknown extension ${JSON.stringify(ext || '(none)')} (expected one of: ${Object.keys(PARSERS).join(', ')})`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('InvalidArgument', `cannot read config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parser[1](text);
  } catch (e) {
    throw new ConfigError('InvalidArgument', `config ${file} is not valid ${parser[0]}: ${(e as Error).message}`);
  }
  return validateConfig(raw, path.dirname(path.resolve(file)), `config ${file}`);
}
