// The one place that loads the compiled addon, and the typed shape of what it exports.
// Public classes wrap this; nothing else in src/ touches the binding directly.
import * as path from 'path';

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
}

export interface NativeDoctor {
  ok: boolean;
  problem: string;
  flavor?: string;
  entryMode?: string;
  caps?: Record<string, number | boolean>;
  /** The fd limit (raised to the hard limit at load), fds open, and how many more forks fit in it. */
  limits: { fdLimit: number; fdHardLimit: number; fdsOpen: number; fdsPerFork: number; forksThatFit: number; threads: number };
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
  args: string[];
  env: string[];
  memoryMiB: number;
  initTimeoutMs: number;
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
  instances: Array<{ calls: number; faults: number; restores: number; netRefused: number; lastRefused?: string; syscalls: Record<string, number> }>;
}

export interface NativeBinding {
  createBackend(elf: Buffer, opts: {
    args: string[]; env: string[]; memoryMiB: number; instances: number; initTimeoutMs: number; callTimeoutMs: number; netAllow: string[]; trusted: boolean; durability: 'call' | 'instance';
    onEvent: (e: { kind: string; instance: number; entry: string; us: number; message: string }) => void;
  }): Promise<{ handle: NativeHandle; entries: string[]; initUs: number }>;
  backendCall(backend: NativeHandle, entry: string, input: Buffer, outCap: number, timeoutMs: number): Promise<{ result: number; output: Buffer; us: number }>;
  backendStats(backend: NativeHandle): NativeBackendStats;
  backendWantCalls(backend: NativeHandle, want: boolean): void;
  backendRestart(backend: NativeHandle, timeoutMs: number): Promise<{ us: number }>;
  backendSetAvailable(backend: NativeHandle, available: boolean): void;
  closeBackend(backend: NativeHandle): void;
  createMaster(elf: Buffer, opts: NativeMasterOptions): Promise<{ handle: NativeHandle; initUs: number; arenaSize: number }>;
  createFork(master: NativeHandle, opts: { maxPrivateMiB: number }): Promise<{ handle: NativeHandle; createUs: number }>;
  forkRequest(fork: NativeHandle, request: Buffer, timeoutMs: number, maxResponseBytes: number): Promise<NativeRequestResult>;
  forkStats(fork: NativeHandle): NativeStats & { fastResets: number; fullResets: number; privatePages: number; gate: 'in-guest' | 'exit' | 'none'; instance?: number };
  closeFork(fork: NativeHandle): void;
  closeMaster(master: NativeHandle): void;
  runProgram(elf: Buffer, opts: NativeRunOptions): Promise<NativeRunResult>;
  doctor(): NativeDoctor;
  /** The shared threads that run fork work: their bound (FARCALL_THREADS or the CPUs) and how many exist. */
  executorInfo(): { threads: number; started: number };
  /** Bench baselines (native/vmm/baseline.h): nanoseconds per round trip, one entry per iteration. */
  baseline(kind: 'exit-out' | 'trap-mmio' | 'trap-fetch' | 'syscall' | 'vm-create', iterations: number): Promise<Float64Array>;
}

let binding: NativeBinding | undefined;

/** Root of the package (where build/ and dist/ live), from src/ or dist/src/. */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (require('fs').existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('farcall: cannot find the package root from ' + __dirname);
}

export function native(): NativeBinding {
  if (!binding) {
    const file = path.join(packageRoot(), 'build', 'Release', 'farcall.node');
    try {
      binding = require(file) as NativeBinding;
    } catch (e) {
      throw new Error(`farcall: cannot load the native addon ${file} (run "npm run build"): ${(e as Error).message}`);
    }
  }
  return binding;
}
