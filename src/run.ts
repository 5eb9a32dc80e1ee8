// runProgram: one static program, one fresh VM, run to completion.
import * as fsSync from 'fs';
import { promises as fs } from 'fs';
import * as path from 'path';

import { FarcallError, fromNative, InvalidArgumentError } from './errors';
import { native, NativeStats } from './native';
import { checkOptions, OptionKind } from './options';

export interface RunOptions {
  /** argv[1..]; argv[0] is the program path (or `argv0`). */
  args?: string[];
  argv0?: string;
  /** Environment, as an object or as "K=V" strings. Guests get only what is passed. */
  env?: Record<string, string> | string[];
  stdin?: string | Buffer | Uint8Array;
  /** Wall-clock limit; the VM is stopped when it passes. Default 10 s. */
  timeoutMs?: number;
  /** Guest memory (RAM) in MiB, a multiple of 2, at least 4. Default 64. */
  memoryMiB?: number;
  /** Bytes kept of each of stdout and stderr; passing it stops the program. Default 1 MiB. */
  outputLimit?: number;
  /**
   * How guest events reach the VMM: 'trap-page', 'out-stub' (hardware KVM) or 'pvm-native'
   * (kvm_pvm). Default: FARCALL_ENTRY when set, else the host's best (pvm-native on kvm_pvm when
   * its start-up self-check passes, trap-page otherwise; out-stub on hardware KVM). docs/entry.md.
   */
  entry?: EntryFlavor;
  /** Files: a read-only view of a host directory and a scratch directory (FilesOptions). Default: no files. */
  files?: FilesOptions;
  /** Guest threads alive at once, the main thread included; clone beyond it fails with EAGAIN. Default 64 (docs/threads.md). */
  maxThreads?: number;
  /** Address space beyond memoryMiB for reservations (PROT_NONE, untouched mappings), 0..65536. Default 1024 (docs/threads.md). */
  reserveMiB?: number;
}

export type EntryFlavor = 'trap-page' | 'out-stub' | 'pvm-native';
const ENTRY_FLAVORS: readonly EntryFlavor[] = ['trap-page', 'out-stub', 'pvm-native'];

/** The `entry` option, checked: undefined (the default) or one of the flavors. */
export function checkEntry(v: unknown, who = 'entry'): EntryFlavor | undefined {
  if (v === undefined || ENTRY_FLAVORS.includes(v as EntryFlavor)) return v as EntryFlavor | undefined;
  throw new InvalidArgumentError('InvalidArgument', `${who}: entry must be one of ${ENTRY_FLAVORS.join(', ')}, got ${JSON.stringify(v)}`);
}

export interface FilesOptions {
  /** A host directory the guest sees, read-only, as "/". */
  readOnly?: string;
  /**
   * A writable directory held in the VMM (docs/files.md): reset with every request of a pool,
   * kept between the calls of a backend instance (and undone with a failed call). `path`: where
   * the guest sees it (absolute, not "/"; default "/tmp"); `maxMiB`: file data it may hold
   * (default 16; a write past it fails with ENOSPC).
   */
  scratch?: { path?: string; maxMiB?: number };
}

/** What the native layer takes: an absolute host directory, the scratch mount and size. */
export interface NativeFiles {
  readOnly?: string;
  scratch?: { path: string; maxMiB: number };
}

/** Why `s` is not a usable files.scratch option, or undefined when it is. */
export function scratchProblem(s: unknown): string | undefined {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return 'must be an object { path?, maxMiB? }';
  for (const k of Object.keys(s)) if (k !== 'path' && k !== 'maxMiB') return `${k} is not a known option`;
  const { path: p, maxMiB } = s as { path?: unknown; maxMiB?: unknown };
  if (p !== undefined) {
    if (typeof p !== 'string' || !p.startsWith('/') || p.length > 1024 || p.includes('\0'))
      return `path must be an absolute guest path, got ${JSON.stringify(p)}`;
    const parts = p.split('/').filter((c) => c !== '');
    if (parts.length === 0) return 'path must not be "/" (the scratch directory overlays one directory of the view)';
    if (parts.some((c) => c === '.' || c === '..' || c.length > 255)) return `path must be normalized (no "." or ".."), got ${JSON.stringify(p)}`;
  }
  if (maxMiB !== undefined && (typeof maxMiB !== 'number' || !Number.isInteger(maxMiB) || maxMiB < 1 || maxMiB > 65536))
    return `maxMiB must be a whole number from 1 to 65536, got ${String(maxMiB)}`;
  return undefined;
}

/** Checks `files` and returns what the native layer takes. */
export function checkFiles(files: FilesOptions | undefined, what = 'files'): NativeFiles | undefined {
  if (files === undefined) return undefined;
  if (typeof files !== 'object' || files === null) throw new InvalidArgumentError('InvalidArgument', `${what} must be an object`);
  for (const k of Object.keys(files))
    if (k !== 'readOnly' && k !== 'scratch') throw new InvalidArgumentError('InvalidArgument', `${what}.${k} is not a known option`);
  const out: NativeFiles = {};
  if (files.scratch !== undefined) {
    const problem = scratchProblem(files.scratch);
    if (problem) throw new InvalidArgumentError('InvalidArgument', `${what}.scratch: ${problem}`);
    const parts = (files.scratch.path ?? '/tmp').split('/').filter((c) => c !== '');
    out.scratch = { path: '/' + parts.join('/'), maxMiB: files.scratch.maxMiB ?? 16 };
  }
  if (files.readOnly === undefined) return out;
  let st: fsSync.Stats | undefined;
  try {
    st = fsSync.statSync(files.readOnly);
  } catch {
    st = undefined;
  }
  if (typeof files.readOnly !== 'string' || !st || !st.isDirectory())
    throw new InvalidArgumentError('InvalidArgument', `${what}.readOnly must be an existing directory, got ${String(files.readOnly)}`);
  out.readOnly = path.resolve(files.readOnly);
  return out;
}

export interface RunStats {
  /** System calls by number, and those answered ENOSYS (unsupported) by number. */
  syscalls: Record<number, number>;
  unsupportedSyscalls: Record<number, number>;
  /** VM exits by reason. */
  exits: Record<string, number>;
  /** Allocations refused because of the memory limit. */
  enomem: number;
  /** Time from the first instruction to the end, in microseconds. */
  timeUs: number;
}

export interface RunResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  stats: RunStats;
}

export function toRunStats(s: NativeStats): RunStats {
  const num = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [Number(k), v]));
  return { syscalls: num(s.syscalls), unsupportedSyscalls: num(s.unsupportedSyscalls), exits: s.exits, enomem: s.enomem, timeUs: s.timeNs / 1000 };
}

export function checkMemoryMiB(m: number, what = 'memoryMiB', max = 65536): number {
  if (!Number.isInteger(m) || m < 4 || m % 2 !== 0 || m > max)
    throw new InvalidArgumentError('InvalidArgument', `${what} must be an even whole number of MiB from 4 to ${max}, got ${m}`);
  return m;
}

export function checkMaxThreads(n: number | undefined): number {
  if (n === undefined) return 64;
  if (!Number.isInteger(n) || n < 1 || n > 4096)
    throw new InvalidArgumentError('InvalidArgument', `maxThreads must be a whole number from 1 to 4096, got ${n}`);
  return n;
}

export function checkReserveMiB(n: number | undefined): number {
  if (n === undefined) return 1024;
  if (!Number.isInteger(n) || n < 0 || n % 2 !== 0 || n > 65536)
    throw new InvalidArgumentError('InvalidArgument', `reserveMiB must be an even whole number from 0 to 65536, got ${n}`);
  return n;
}

export function checkTimeoutMs(t: number, what = 'timeoutMs'): number {
  if (!Number.isFinite(t) || t <= 0) throw new InvalidArgumentError('InvalidArgument', `${what} must be a positive number, got ${t}`);
  return t;
}

export function envList(env: RunOptions['env']): string[] {
  if (!env) return [];
  return Array.isArray(env) ? env : Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** `who` ("request pool", "pool web (config pools.web)") and the program's path, for messages. */
export function programLabel(who: string, program: string | Buffer): string {
  return `${who}: program ${typeof program === 'string' ? program : '(buffer)'}`;
}

export async function loadProgram(program: string | Buffer, who = 'run'): Promise<Buffer> {
  if (Buffer.isBuffer(program)) return program;
  if (typeof program !== 'string') throw new InvalidArgumentError('InvalidArgument', `${who}: the program must be a path or a Buffer, got ${typeof program}`);
  try {
    return await fs.readFile(program);
  } catch (e) {
    throw new InvalidArgumentError('InvalidArgument', `${programLabel(who, program)}: cannot read it: ${(e as Error).message}`);
  }
}

/** The native error as its typed class, its message led by `label` so it names the culprit. */
export function labelled(e: unknown, label: string): FarcallError {
  const err = fromNative(e);
  if (!err.message.startsWith(label)) err.message = `${label}: ${err.message}`;
  return err;
}

// `satisfies` makes an option added to RunOptions but not here a compile error.
const RUN_OPTIONS = {
  args: 'strings', argv0: 'string', env: 'env', stdin: 'bytes', timeoutMs: 'number', memoryMiB: 'number', outputLimit: 'number',
  entry: 'string', files: 'object', maxThreads: 'number', reserveMiB: 'number',
} as const satisfies Record<keyof RunOptions, OptionKind>;

/** Runs a static x86-64 Linux program in a fresh VM and resolves when it exits. */
export async function runProgram(program: string | Buffer, opts: RunOptions = {}): Promise<RunResult> {
  checkOptions(opts, RUN_OPTIONS, 'runProgram');
  const elf = await loadProgram(program);
  const argv0 = opts.argv0 ?? (typeof program === 'string' ? program : 'program');
  const stdin = opts.stdin === undefined ? Buffer.alloc(0) : Buffer.from(opts.stdin as Uint8Array);
  try {
    const r = await native().runProgram(elf, {
      args: [argv0, ...(opts.args ?? [])],
      env: envList(opts.env),
      stdin,
      timeoutMs: checkTimeoutMs(opts.timeoutMs ?? 10000),
      memoryMiB: checkMemoryMiB(opts.memoryMiB ?? 64),
      outputLimit: opts.outputLimit ?? 1 << 20,
      entry: checkEntry(opts.entry, 'runProgram'),
      files: checkFiles(opts.files),
      maxThreads: checkMaxThreads(opts.maxThreads),
      reserveMiB: checkReserveMiB(opts.reserveMiB),
    });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, stats: toRunStats(r.stats) };
  } catch (e) {
    const err = labelled(e, programLabel('run', program));
    const stats = (e as { stats?: NativeStats }).stats;
    if (stats) err.stats = toRunStats(stats); // which unsupported call was hit, and the rest
    throw err;
  }
}
