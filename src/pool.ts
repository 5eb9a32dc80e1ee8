// RequestPool: forks of one pre-initialized master, one request each at a time, reset after
// every request. At most `concurrency` forks run at once (about the cores: more only makes every
// request slower); the rest of the requests queue.
import { constants as bufferConstants } from 'buffer';
import * as os from 'os';
import { EventEmitter } from 'eventemitter3';

import { ClosedError, FarcallError, fromNative, InvalidArgumentError, OverloadedError } from './errors';
import { Backend } from './backend';
import { native, NativeRequestResult } from './native';
import { checkOptions, OptionKind } from './options';
import { checkEntry, checkFiles, checkMaxThreads, checkMemoryMiB, checkReserveMiB, checkTimeoutMs, EntryFlavor, envList, FilesOptions, labelled, loadProgram, programLabel } from './run';
import { SnapshotInfo, snapshotToRead, snapshotToWrite } from './snapshot';
import { LatencySummary, LatencyWindow } from './stats';

export interface RequestPoolOptions {
  /** Number of forks (concurrent requests). Default 2. */
  size?: number;
  /**
   * Forks that run at once; further requests wait in the queue. Default: the number of cores
   * (os.availableParallelism()), at most `size`. A pool larger than this keeps warm forks, and a
   * burst never runs more requests than the cores can serve before their time limits.
   */
  concurrency?: number;
  /** Per-request wall-clock limit, counted from when the request starts running (not while it queues). Default 5000 ms. */
  timeoutMs?: number;
  /** Limit for the master's initialization (up to farcall_ready()). Default 10000 ms. */
  initTimeoutMs?: number;
  /** Guest memory per VM in MiB. Default 64. */
  memoryMiB?: number;
  /** Files the program sees: a read-only view of a host directory, a scratch directory (docs/api.md, files). */
  files?: FilesOptions;
  /** Guest threads alive at once per VM, the main thread included; clone beyond it fails with EAGAIN. Default 64 (docs/threads.md). */
  maxThreads?: number;
  /**
   * Address space beyond memoryMiB for reservations, as for runProgram. Default 1024. Every reset
   * reads the dirty log over the whole space: 0 makes a fork's resets as cheap as before (docs/threads.md).
   */
  reserveMiB?: number;
  /** A fork whose private (copy-on-write) memory passes this is reset fully. Default 16 MiB. */
  maxDirtyMiB?: number;
  /** Requests waiting for a fork beyond this are refused with OverloadedError. Default 64. */
  maxQueue?: number;
  /**
   * A response larger than this is refused with an OutputLimitError (the fork is reset as
   * usual). Default and upper bound: the largest Buffer Node.js can make.
   */
  maxResponseBytes?: number;
  /**
   * How guest events reach the VMM: 'trap-page', 'out-stub' (hardware KVM) or 'pvm-native'
   * (kvm_pvm). Default: FARCALL_ENTRY when set, else the host's best (pvm-native on kvm_pvm when
   * its start-up self-check passes, trap-page otherwise; out-stub on hardware KVM). docs/entry.md.
   */
  entry?: EntryFlavor;
  args?: string[];
  env?: Record<string, string> | string[];
  /** Backends the program may call, by the name it looks them up with ("name.entry"). */
  backends?: Record<string, Backend>;
  /** Who this pool is, for error messages (e.g. "pool web (config pools.web)"). Default "request pool". */
  context?: string;
}

function checkMaxResponse(v: number | undefined): number {
  const max = bufferConstants.MAX_LENGTH;
  if (v === undefined) return max;
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw new InvalidArgumentError('InvalidArgument', `maxResponseBytes must be a whole number from 0 to ${max}, got ${v}`);
  return v;
}

// `satisfies` makes an option added to the interface but not here a compile error.
const POOL_OPTIONS = {
  size: 'number', timeoutMs: 'number', initTimeoutMs: 'number', memoryMiB: 'number', maxDirtyMiB: 'number', maxQueue: 'number',
  maxResponseBytes: 'number', args: 'strings', env: 'env', backends: 'object', context: 'string', entry: 'string', concurrency: 'number',
  files: 'object', maxThreads: 'number', reserveMiB: 'number',
} as const satisfies Record<keyof RequestPoolOptions, OptionKind>;

/**
 * A pool made from a snapshot (RequestPool.fromSnapshot): memory, entry flavor, arguments and
 * environment are the snapshot's; `backends` must include every backend the snapshot's master
 * had, by the same name, with the same entry points at the same place (a backend loaded in the
 * same order, or from its own snapshot), else a SnapshotIncompatibleError.
 */
export type SnapshotPoolOptions = Omit<RequestPoolOptions, 'memoryMiB' | 'initTimeoutMs' | 'args' | 'env' | 'entry' | 'maxThreads' | 'reserveMiB'>;
const { memoryMiB: _m, initTimeoutMs: _i, args: _a, env: _e, entry: _n, maxThreads: _t, reserveMiB: _r, ...SNAPSHOT_POOL_OPTIONS } = POOL_OPTIONS;

interface CheckedPool { size: number; maxQueue: number; concurrency: number; maxDirty: number; timeoutMs: number; maxResponseBytes: number }

function checkPool(options: SnapshotPoolOptions, who: string): CheckedPool {
  const size = options.size ?? 2;
  if (!Number.isInteger(size) || size < 1 || size > 256)
    throw new InvalidArgumentError('InvalidArgument', `${who}: size must be a whole number from 1 to 256, got ${size}`);
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  if (!Number.isInteger(maxQueue) || maxQueue < 0)
    throw new InvalidArgumentError('InvalidArgument', `${who}: maxQueue must be a whole number from 0 up, got ${maxQueue}`);
  const concurrency = options.concurrency ?? Math.min(size, defaultConcurrency());
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > size)
    throw new InvalidArgumentError('InvalidArgument', `${who}: concurrency must be a whole number from 1 to size (${size}), got ${concurrency}`);
  const maxDirty = options.maxDirtyMiB ?? 16;
  if (!(maxDirty > 0)) throw new InvalidArgumentError('InvalidArgument', `${who}: maxDirtyMiB must be positive, got ${maxDirty}`);
  for (const [name, b] of Object.entries(options.backends ?? {}))
    if (!(b instanceof Backend)) throw new InvalidArgumentError('InvalidArgument', `${who}: backends.${name} must be a Backend (from Backend.load)`);
  return { size, maxQueue, concurrency, maxDirty, timeoutMs: checkTimeoutMs(options.timeoutMs ?? 5000), maxResponseBytes: checkMaxResponse(options.maxResponseBytes) };
}

function backendList(backends: Record<string, Backend> | undefined, who: string): Array<{ name: string; handle: unknown }> {
  return Object.entries(backends ?? {}).map(([name, b]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new InvalidArgumentError('InvalidArgument', `${who}: backend name ${JSON.stringify(name)} must be an identifier`);
    return { name, handle: b.nativeHandle() };
  });
}

export type ResetKind = 'fast' | 'full';

/** Forks a pool runs at once unless told otherwise: the cores this process may use. */
export function defaultConcurrency(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** Requests a pool lets wait for a fork unless told otherwise: a bound, so overload is refused early. */
export const DEFAULT_MAX_QUEUE = 64;

export interface RequestEvent { fork: number; ok: boolean; us: number; runUs: number; bytesIn: number; bytesOut: number }
export interface ResetEvent { fork: number; kind: ResetKind; pages: number; us: number; reason?: string }
export interface FailureEvent { fork: number; error: FarcallError }

export interface RequestPoolEvents {
  request: (e: RequestEvent) => void;
  reset: (e: ResetEvent) => void;
  timeout: (e: FailureEvent) => void;
  fault: (e: FailureEvent) => void;
}

export interface RequestPoolStats {
  forks: number;
  /** Forks that run at once (the rest of the requests queue). */
  concurrency: number;
  busy: number;
  queued: number;
  requests: number;
  errors: number;
  timeouts: number;
  faults: number;
  resets: { fast: number; full: number };
  latency: LatencySummary;
  reset: LatencySummary;
  /** Loading and running the program to farcall_ready(), or restoring the master from its snapshot. */
  masterInitUs: number;
  /** Where the master came from. */
  source: 'program' | 'snapshot';
  forkCreateUs: number[];
  /**
   * How calls to backends travel: 'in-guest' (PVM host, every backend trusted: no VM exit per
   * call), 'exit' (through the VMM), or 'none' (no backends attached).
   */
  gate: GateKind;
  /** The entry flavor of the pool's VMs (RequestPoolOptions.entry). */
  entry: EntryFlavor;
}

export type GateKind = 'in-guest' | 'exit' | 'none';

interface Pending {
  bytes: Buffer;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  queuedAt: number;
}

interface ForkSlot {
  id: number;
  handle: unknown;
  busy: boolean;
}

export class RequestPool extends EventEmitter<RequestPoolEvents> {
  private readonly queue: Pending[] = [];
  private readonly idle: ForkSlot[] = [];
  private readonly forks: ForkSlot[] = [];
  private closed = false;
  private inFlight = 0;
  private drained?: () => void;
  private readonly latency = new LatencyWindow();
  private readonly resetLatency = new LatencyWindow();
  private counters = { requests: 0, errors: 0, timeouts: 0, faults: 0, fast: 0, full: 0 };
  private forkCreateUs: number[] = [];

  private constructor(
    private readonly master: unknown,
    private readonly masterInitUs: number,
    private readonly source: 'program' | 'snapshot',
    private readonly opts: Required<Pick<RequestPoolOptions, 'timeoutMs' | 'maxQueue' | 'maxResponseBytes' | 'concurrency'>>,
  ) {
    super();
  }

  /** Loads `program`, runs it to farcall_ready(), and makes `size` forks of it. */
  static async create(program: string | Buffer, options: RequestPoolOptions = {}): Promise<RequestPool> {
    const who = options?.context ?? 'request pool';
    checkOptions(options, POOL_OPTIONS, who);
    const checked = checkPool(options, who);
    const elf = await loadProgram(program, who);
    const label = programLabel(who, program);
    let m;
    try {
      m = await native().createMaster(elf, {
        backends: backendList(options.backends, who),
        args: [typeof program === 'string' ? program : 'program', ...(options.args ?? [])],
        env: envList(options.env),
        memoryMiB: checkMemoryMiB(options.memoryMiB ?? 64),
        files: checkFiles(options.files),
        maxThreads: checkMaxThreads(options.maxThreads),
        reserveMiB: checkReserveMiB(options.reserveMiB),
        initTimeoutMs: checkTimeoutMs(options.initTimeoutMs ?? 10000, 'initTimeoutMs'),
        entry: checkEntry(options.entry, who),
      });
    } catch (e) {
      throw labelled(e, label);
    }
    return RequestPool.withForks(m, 'program', checked, label);
  }

  /**
   * Makes a pool from a snapshot file (pool.snapshot(), `farcall snapshot`) without running the
   * program: its memory is mapped from the file copy-on-write, and every fork starts exactly
   * where the snapshot's master stood after farcall_ready().
   */
  static async fromSnapshot(file: string, options: SnapshotPoolOptions = {}): Promise<RequestPool> {
    const who = options?.context ?? 'request pool';
    checkOptions(options, SNAPSHOT_POOL_OPTIONS, who);
    const checked = checkPool(options, who);
    const snapshot = snapshotToRead(file);
    let m;
    try {
      m = await native().createMaster(Buffer.alloc(0), {
        backends: backendList(options.backends, who), args: [], env: [], memoryMiB: 0, initTimeoutMs: 0, snapshot,
      });
    } catch (e) {
      throw fromNative(e);
    }
    return RequestPool.withForks(m, 'snapshot', checked, `${who} (snapshot ${snapshot})`);
  }

  private static async withForks(m: { handle: unknown; initUs: number }, source: 'program' | 'snapshot', c: CheckedPool, label: string): Promise<RequestPool> {
    const pool = new RequestPool(m.handle, m.initUs, source, {
      timeoutMs: c.timeoutMs, maxQueue: c.maxQueue, maxResponseBytes: c.maxResponseBytes, concurrency: c.concurrency,
    });
    try {
      const made = await Promise.all(Array.from({ length: c.size }, () => native().createFork(m.handle, { maxPrivateMiB: c.maxDirty })));
      made.forEach((f, id) => {
        const slot = { id, handle: f.handle, busy: false };
        pool.forks.push(slot);
        pool.idle.push(slot);
        pool.forkCreateUs.push(f.createUs);
      });
    } catch (e) {
      await pool.close();
      throw labelled(e, label);
    }
    return pool;
  }

  /**
   * Writes the master (its memory, registers and bookkeeping, the backends it has) to `file`,
   * replacing it atomically. Forks keep serving meanwhile. RequestPool.fromSnapshot(file) makes
   * pools from it in this process or another one on a machine with the same CPU features.
   */
  async snapshot(file: string): Promise<SnapshotInfo> {
    if (this.closed) throw new ClosedError('Closed', 'the request pool is closed');
    const target = snapshotToWrite(file);
    try {
      const r = await native().masterSnapshot(this.master, target);
      return { bytes: r.bytes, us: r.us, path: target };
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Requests running and queue places: how many requests the pool holds at once. */
  get capacity(): number {
    return this.opts.concurrency + this.opts.maxQueue;
  }

  /** True when a request would be refused now: `concurrency` requests running and the queue at maxQueue. */
  get full(): boolean {
    return this.queue.length >= this.opts.maxQueue && !this.canStart();
  }

  private canStart(): boolean {
    return this.idle.length > 0 && this.inFlight < this.opts.concurrency;
  }

  /** Runs one request in a fork and resolves with the bytes passed to farcall_respond(). */
  run(request: Uint8Array | string): Promise<Buffer> {
    if (this.closed) return Promise.reject(new ClosedError('Closed', 'the request pool is closed'));
    if (this.full)
      return Promise.reject(new OverloadedError('Overloaded', `request queue is full (${this.queue.length} waiting, maxQueue ${this.opts.maxQueue})`, { queued: this.queue.length, maxQueue: this.opts.maxQueue }));
    const bytes = typeof request === 'string' ? Buffer.from(request) : Buffer.from(request.buffer, request.byteOffset, request.byteLength);
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ bytes, resolve, reject, queuedAt: performance.now() });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length && this.canStart()) {
      const slot = this.idle.pop()!;
      const job = this.queue.shift()!;
      slot.busy = true;
      this.inFlight++;
      native()
        .forkRequest(slot.handle, job.bytes, this.opts.timeoutMs, this.opts.maxResponseBytes)
        .then((r) => this.finish(slot, job, r), (e) => this.finish(slot, job, undefined, fromNative(e)));
    }
  }

  private finish(slot: ForkSlot, job: Pending, r?: NativeRequestResult, thrown?: FarcallError): void {
    const us = (performance.now() - job.queuedAt) * 1000;
    this.counters.requests++;
    if (r) {
      const kind = r.reset.kind;
      this.counters[kind]++;
      this.resetLatency.add(r.reset.us);
      this.emit('reset', { fork: slot.id, kind, pages: r.reset.pages, us: r.reset.us, reason: r.reset.reason });
    }
    let error = thrown;
    if (r && !r.ok) error = fromNative(r.error);
    this.latency.add(us);
    this.emit('request', {
      fork: slot.id, ok: !error, us, runUs: r ? r.runUs : 0, bytesIn: job.bytes.length, bytesOut: r?.response?.length ?? 0,
    });
    if (error) {
      this.counters.errors++;
      if (error.code === 'Timeout') {
        this.counters.timeouts++;
        this.emit('timeout', { fork: slot.id, error });
      } else if (error.code === 'GuestFault' || error.code === 'MemoryLimit') {
        this.counters.faults++;
        this.emit('fault', { fork: slot.id, error });
      }
      job.reject(error);
    } else {
      job.resolve(r!.response!);
    }
    slot.busy = false;
    this.inFlight--;
    if (this.closed) {
      if (this.inFlight === 0 && this.drained) this.drained();
      return;
    }
    this.idle.push(slot);
    this.dispatch();
  }

  stats(): RequestPoolStats {
    const first = this.forks.length ? native().forkStats(this.forks[0].handle) : undefined;
    return {
      forks: this.forks.length,
      concurrency: this.opts.concurrency,
      busy: this.inFlight,
      queued: this.queue.length,
      requests: this.counters.requests,
      errors: this.counters.errors,
      timeouts: this.counters.timeouts,
      faults: this.counters.faults,
      resets: { fast: this.counters.fast, full: this.counters.full },
      latency: this.latency.summary(),
      reset: this.resetLatency.summary(),
      masterInitUs: this.masterInitUs,
      source: this.source,
      forkCreateUs: [...this.forkCreateUs],
      gate: first?.gate ?? 'none',
      entry: (first?.entry ?? 'trap-page') as EntryFlavor,
    };
  }

  /** Per-fork native counters (resets, private pages, exits, system calls). */
  forkStats(): Array<Record<string, unknown>> {
    return this.forks.map((f) => native().forkStats(f.handle) as unknown as Record<string, unknown>);
  }

  /** Refuses new requests, fails queued ones, waits for running ones, and frees every VM. */
  async close(): Promise<void> {
    if (this.closed && this.forks.length === 0) return;
    this.closed = true;
    for (const q of this.queue.splice(0)) q.reject(new ClosedError('Closed', 'the request pool was closed'));
    if (this.inFlight > 0) await new Promise<void>((res) => (this.drained = res));
    const n = native();
    for (const f of this.forks.splice(0)) n.closeFork(f.handle);
    this.idle.length = 0;
    n.closeMaster(this.master);
    this.removeAllListeners();
  }
}
