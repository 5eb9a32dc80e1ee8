// The one place that loads the compiled addon, and the typed shape of what it exports.
// Public classes wrap this; nothing else in src/ touches the binding directly.
import * as fs from 'fs';
import * as path from 'path';

import { AddonUnavailableError } from './errors';
import type { NativeFiles } from './run';

export interface NativeStats {
  syscalls: Record<string, number>;
  unsupportedSyscalls: Record<string, number>;
  exits: Record<string, number>;
  enomem: number;
  timeNs: number;
}

export interface NativeRunResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  stats: NativeStats;
}

export interface NativeRunOptions {
  args: string[];
  env: string[];
  stdin: Buffer;
  timeoutMs: number;
  memoryMiB: number;
  outputLimit: number;
  entry?: string;
  files?: NativeFiles;
  maxThreads?: number;
  reserveMiB?: number;
}

export interface NativeDoctor {
  ok: boolean;
  problem: string;
  flavor?: string;
  entryMode?: string;
  /** FARCALL_ENTRY names no flavor. */
  entryError?: string;
  /** Why a kvm_pvm host defaults to trap-page rather than pvm-native. */
  entryFallback?: string;
  physBits?: number;
  caps?: Record<string, number | boolean>;
  /** The fd limit (raised to the hard limit at load), fds open, and how many more forks fit in it. */
  /** Absent when the addon did not load (doctor's own probe). */
  limits?: { fdLimit: number; fdHardLimit: number; fdsOpen: number; fdsPerFork: number; forksThatFit: number; threads: number };
  vmStock?: NativeVmStock;
}

export interface NativeResetInfo {
  kind: 'fast' | 'full';
  pages: number;
  us: number;
  reason?: string;
}

export interface NativeRequestResult {
  ok: boolean;
  response?: Buffer;
  error?: unknown;
  reset: NativeResetInfo;
  runUs: number;
  stdout: Buffer;
  stderr: Buffer;
}

export interface NativeMasterOptions {
  backends?: Array<{ name: string; handle: NativeHandle }>;
  files?: NativeFiles;
  /** Restore from this snapshot file instead of running the program. */
  snapshot?: string;
  args: string[];
  env: string[];
  memoryMiB: number;
  initTimeoutMs: number;
  entry?: string;
  maxThreads?: number;
  reserveMiB?: number;
}

/** Opaque handles: External values owned by the addon. */
export type NativeHandle = unknown;

export interface NativeBackendStats {
  calls: number;
  memoryAt: number;
  faults: number;
  restores: number;
  timeouts: number;
  outputDropped: number;
  durability: 'call' | 'instance';
  entry: string;
  instances: Array<{ calls: number; faults: number; restores: number; netRefused: number; lastRefused?: string; syscalls: Record<string, number> }>;
}

export interface NativeBinding {
  createBackend(elf: Buffer, opts: {
    args: string[]; env: string[]; memoryMiB: number; files?: NativeFiles; instances: number; initTimeoutMs: number; callTimeoutMs: number; netAllow: string[]; trusted: boolean; durability: 'call' | 'instance'; entry?: string;
    onEvent: (e: { kind: string; instance: number; entry: string; us: number; message: string }) => void;
    /** Restore from this snapshot file instead of running the program. */
    snapshot?: string;
  }): Promise<{ handle: NativeHandle; entries: string[]; initUs: number; instances: number; memoryMiB: number }>;
  backendSnapshot(backend: NativeHandle, path: string, timeoutMs: number): Promise<{ bytes: number; us: number }>;
  /** `fault`: why the call did not return (vector, rip, address; a timeout; an exit), when it did not. */
  backendCall(backend: NativeHandle, entry: string, input: Buffer, outCap: number, timeoutMs: number): Promise<{ result: number; output: Buffer; us: number; fault?: string }>;
  backendStats(backend: NativeHandle): NativeBackendStats;
  backendWantCalls(backend: NativeHandle, want: boolean): void;
  backendRestart(backend: NativeHandle, timeoutMs: number): Promise<{ us: number }>;
  backendSetAvailable(backend: NativeHandle, available: boolean): void;
  closeBackend(backend: NativeHandle): void;
  createMaster(elf: Buffer, opts: NativeMasterOptions): Promise<{ handle: NativeHandle; initUs: number; arenaSize: number; memoryMiB: number }>;
  masterSnapshot(master: NativeHandle, path: string): Promise<{ bytes: number; us: number }>;
  createFork(master: NativeHandle, opts: { maxPrivateMiB: number }): Promise<{ handle: NativeHandle; createUs: number }>;
  forkRequest(fork: NativeHandle, request: Buffer, timeoutMs: number, maxResponseBytes: number): Promise<NativeRequestResult>;
  forkStats(fork: NativeHandle): NativeStats & { fastResets: number; fullResets: number; privatePages: number; gate: 'in-guest' | 'exit' | 'none'; entry: string; instance?: number };
  closeFork(fork: NativeHandle): void;
  closeMaster(master: NativeHandle): void;
  runProgram(elf: Buffer, opts: NativeRunOptions): Promise<NativeRunResult>;
  doctor(): NativeDoctor;
  /** Every error code, from native/vmm/error_codes.h (the one list). */
  errorCodes: string[];
  /** Retired VMs kept for reuse (native/vmm/vmstock.h); with `max`, how many are kept from now on. */
  vmStock(max?: number): NativeVmStock;
  /** The shared threads that run fork work: their bound (FARCALL_THREADS or the CPUs) and how many exist. */
  executorInfo(): { threads: number; started: number };
  /** Where backend memory of these sizes (bytes) would sit on a CPU with this physical address width. */
  gpaPlan(physBits: number, sizes: number[]): number[];
  /** Bench baselines (native/vmm/baseline.h): nanoseconds per round trip, one entry per iteration. */
  baseline(kind: 'exit-out' | 'trap-mmio' | 'trap-fetch' | 'syscall' | 'vm-create', iterations: number): Promise<Float64Array>;
}

export interface NativeVmStock {
  max: number;
  idle: number;
  created: number;
  reused: number;
}

let binding: NativeBinding | undefined;

/** Root of the package (where package.json, build/ and dist/ live), from src/ or dist/src/. */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('farcall: cannot find the package root from ' + __dirname);
}

/** The prebuilt addon the package ships (node-gyp-build's layout; Node-API, so one file serves every Node >= 20). */
export const PREBUILD = path.join('prebuilds', 'linux-x64', 'node.napi.glibc.node');

/** The oldest glibc the prebuilt addon runs on (scripts/setup.js --pack checks it when it makes the file). */
export const GLIBC_MIN = '2.34';

/** The fix for an addon that does not load, for where farcall is: a clone (build it) or an installed package. */
function addonFix(root: string): string {
  const where = `${process.platform}-${process.arch}`;
  if (where !== 'linux-x64') return `farcall runs only on x86-64 Linux with KVM; this is ${where}`;
  if (fs.existsSync(path.join(root, 'native', 'CMakeLists.txt'))) return `build it: cd ${root} && npm run build`;
  if (fs.existsSync(path.join(root, PREBUILD)))
    return `the prebuilt ${PREBUILD} needs glibc >= ${GLIBC_MIN} and libstdc++ of GCC 12 or newer (Debian 12, Ubuntu 22.04 and later)`;
  return `reinstall farcall (npm install farcall): the package lacks its prebuilt ${PREBUILD}`;
}

export function native(): NativeBinding {
  if (!binding) {
    const root = packageRoot();
    try {
      // node-gyp-build: build/Release (a clone) first, then prebuilds/<platform>-<arch>/ (the package).
      binding = require('node-gyp-build')(root) as NativeBinding;
    } catch (e) {
      const cause = (e as Error).message.split('\n')[0];
      const fix = addonFix(root);
      throw new AddonUnavailableError('AddonUnavailable', `the native addon does not load (${cause}): ${fix}`, { cause, fix, root });
    }
  }
  return binding;
}
