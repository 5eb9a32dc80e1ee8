// Backend: a program that keeps state and exports entry points, called from request VMs
// (through the gate) and from the host (here), one call per instance at a time.
import { EventEmitter } from 'eventemitter3';

import { BackendUnavailableError, ClosedError, fromNative, InvalidArgumentError } from './errors';
import { native, NativeHandle } from './native';
import { checkOptions, OptionKind } from './options';
import { checkEntry, checkFiles, checkMemoryMiB, checkTimeoutMs, EntryFlavor, envList, FilesOptions, labelled, loadProgram, NativeFiles, programLabel } from './run';
import { SnapshotInfo, snapshotToRead, snapshotToWrite } from './snapshot';
import { LatencySummary, LatencyWindow } from './stats';

export interface BackendOptions {
  /** Copies of the backend made after its initialization (e.g. one per database connection). Default 1. */
  instances?: number;
  /** Guest memory of each instance, in MiB (even, 4..16384). Default 32. */
  memoryMiB?: number;
  /** Files the program sees: a read-only view of a host directory, a scratch directory (docs/api.md, files). */
  files?: FilesOptions;
  /**
   * Limit for one call; a call past it returns FARCALL_E_BACKEND_TIMEOUT to its caller and its
   * writes are undone (see `durability`). A caller's own time limit never cuts a call that has
   * one: the caller stops after the call returns. Default 1000 ms.
   */
  callTimeoutMs?: number;
  /** Limit for initialization up to farcall_serve(). Default 10000 ms. */
  initTimeoutMs?: number;
  args?: string[];
  env?: Record<string, string> | string[];
  /** When to restart the backend from its program, and how fast to retry. */
  restart?: RestartPolicy;
  /** Network destinations ("a.b.c.d:port") the backend may connect to. Default: none. */
  network?: { allow: string[] };
  /**
   * Lets callers on PVM hosts (FARCALL_ENTRY=pvm-native) run this backend inside their own
   * guest kernel: a far call then takes no VM exit (~1 µs instead of ~100 µs), but the backend
   * runs in guest supervisor mode and can take over the VMs that call it. Only for backends
   * you trust as much as the VMM. Callers that also attach an untrusted backend, and hosts
   * without PVM, use the exit gate as usual. Default false. See docs/pvm.md.
   */
  trusted?: boolean;
  /**
   * What a call that does not return (crash, timeout, exit, memory exhaustion) takes with it.
   * 'call' (default): only its own writes are undone; every write an earlier call was
   * acknowledged for stays. The VMM tracks the pages each call writes and keeps a consistent
   * copy of them; on the in-guest gate this costs one VM exit per call (docs/architecture.md).
   * 'instance': the instance goes back to its state right after farcall_serve(), losing every
   * write since; no per-call cost (the in-guest gate stays exit-free).
   */
  durability?: 'call' | 'instance';
  /**
   * How guest events reach the VMM for this backend's own VMs: 'trap-page', 'out-stub' or
   * 'pvm-native'. Default as for RequestPoolOptions.entry. docs/entry.md.
   */
  entry?: EntryFlavor;
  /** Who this backend is, for error messages (e.g. "backend kv (config backends.kv)"). Default "backend". */
  context?: string;
  /**
   * Periodic snapshots: every `everyMs`, the backend's state is written to `path` (atomically,
   * at a point where no call is in progress). Restarts (the restart policy, restart()) then
   * start from the latest snapshot instead of the program. Default none.
   */
  snapshots?: { path: string; everyMs: number };
}

/** Options of Backend.fromSnapshot: memory size, instances, entry flavor and arguments are the snapshot's. */
export type SnapshotBackendOptions = Omit<BackendOptions, 'instances' | 'memoryMiB' | 'initTimeoutMs' | 'args' | 'env' | 'entry'>;

/**
 * A backend whose calls keep faulting (maxFaults within windowMs) is restarted from its
 * program: it is unavailable meanwhile (guest calls get FARCALL_E_BACKEND_BUSY, host calls a
 * BackendUnavailableError), and a failed restart is retried with exponential back-off.
 */
export interface RestartPolicy {
  maxFaults?: number; // default 3
  windowMs?: number; // default 10000
  backoffMs?: number; // first delay, default 100
  maxBackoffMs?: number; // default 10000
}

export interface BackendRestartEvent { attempt: number; ok: boolean; us: number; error?: string }

export interface BackendSnapshotEvent { ok: boolean; path: string; bytes: number; us: number; error?: string }

export interface BackendCallEvent { instance: number; entry: string; us: number }
export interface BackendFaultEvent { instance: number; entry: string; message: string }
export interface BackendRestoreEvent { instance: number; us: number; reason: string }
/** What a backend wrote to stdout or stderr (drained as it is written; never ends a call). */
export interface BackendOutputEvent { instance: number; stream: 'stdout' | 'stderr'; data: string }

export interface BackendEvents {
  /** A completed call (only emitted while someone listens: it costs a hop to the event loop). */
  call: (e: BackendCallEvent) => void;
  /** A call that crashed, timed out, exited or exhausted memory; the caller got an error value. */
  fault: (e: BackendFaultEvent) => void;
  /** A call's writes undone (durability 'call'), or an instance put back to its state after farcall_serve(). */
  restore: (e: BackendRestoreEvent) => void;
  /** Backend output, as written. Unlistened output, or more than 1 MiB not yet delivered, is dropped (stats().outputDropped). */
  output: (e: BackendOutputEvent) => void;
  /** The backend was re-initialized from its program or its latest snapshot (or an attempt failed). */
  restart: (e: BackendRestartEvent) => void;
  /** A periodic snapshot was written (or failed: `error`). */
  snapshot: (e: BackendSnapshotEvent) => void;
}

export interface BackendStats {
  restarts: number;
  available: boolean;
  calls: number;
  faults: number;
  restores: number;
  timeouts: number;
  /** Bytes of backend output dropped (nobody listened, or the host fell behind by more than 1 MiB). */
  outputDropped: number;
  durability: 'call' | 'instance';
  /** The entry flavor of the backend's VMs. */
  entry: EntryFlavor;
  instances: Array<{ calls: number; faults: number; restores: number; netRefused: number; lastRefused?: string; syscalls: Record<string, number> }>;
  hostCalls: LatencySummary;
  /** Where the backend's memory appears in every VM that calls it (its own 16 GiB window from 1 TiB). */
  memoryAt: number;
}

export interface CallOptions {
  /** Room for the reply, in bytes. Default 64 KiB; at most 3 MiB. */
  outCap?: number;
  timeoutMs?: number;
}

function checkDurability(d: unknown): 'call' | 'instance' {
  if (d === undefined) return 'call';
  if (d !== 'call' && d !== 'instance')
    throw new InvalidArgumentError('InvalidArgument', `durability must be 'call' or 'instance', got ${JSON.stringify(d)}`);
  return d;
}
// `satisfies` makes an option added to an interface but not here a compile error.
const BACKEND_OPTIONS = {
  instances: 'number', memoryMiB: 'number', callTimeoutMs: 'number', initTimeoutMs: 'number', args: 'strings', env: 'env',
  restart: 'object', network: 'object', trusted: 'boolean', durability: 'string', context: 'string', entry: 'string',
  files: 'object',
  snapshots: 'object',
} as const satisfies Record<keyof BackendOptions, OptionKind>;
const { instances: _n, memoryMiB: _m, initTimeoutMs: _i, args: _a, env: _e, entry: _f, ...SNAPSHOT_BACKEND_OPTIONS } = BACKEND_OPTIONS;
const RESTART_OPTIONS = { maxFaults: 'number', windowMs: 'number', backoffMs: 'number', maxBackoffMs: 'number' } as const satisfies Record<keyof RestartPolicy, OptionKind>;
const CALL_OPTIONS = { outCap: 'number', timeoutMs: 'number' } as const satisfies Record<keyof CallOptions, OptionKind>;

export class Backend extends EventEmitter<BackendEvents> {
  private handle: NativeHandle | null;
  private readonly hostLatency = new LatencyWindow();
  private faultTimes: number[] = [];
  private restarting = false;
  private restartTimer?: NodeJS.Timeout;
  private restartRun?: Promise<void>;
  private restarts = 0;
  private readonly policy: Required<RestartPolicy>;
  private readonly onFault = () => this.noteFault();
  private snapshotTimer?: NodeJS.Timeout;

  private constructor(handle: NativeHandle, readonly entries: string[], readonly initUs: number, readonly path: string, policy: RestartPolicy) {
    super();
    this.handle = handle;
    this.policy = { maxFaults: 3, windowMs: 10000, backoffMs: 100, maxBackoffMs: 10000, ...policy };
    super.on('fault', this.onFault);
  }

  /** True while a restart is pending or running. */
  get isRestarting(): boolean {
    return this.restarting;
  }

  private noteFault(): void {
    const now = Date.now();
    this.faultTimes = this.faultTimes.filter((t) => now - t < this.policy.windowMs);
    this.faultTimes.push(now);
    if (!this.restarting && this.faultTimes.length >= this.policy.maxFaults) {
      this.restarting = true;
      if (this.handle) native().backendSetAvailable(this.handle, false);
      this.scheduleRestart(1, this.policy.backoffMs);
    }
  }

  private scheduleRestart(attempt: number, delay: number): void {
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.attemptRestart(attempt, delay).catch(() => {}); // reported by the 'restart' event, retried
    }, delay);
  }

  // One restart attempt. Until one succeeds the backend stays unavailable (isRestarting, guest
  // calls get FARCALL_E_BACKEND_BUSY, host calls BackendUnavailableError); a failed attempt is
  // reported and retried with back-off, whoever started it.
  private attemptRestart(attempt: number, delay: number): Promise<void> {
    if (this.restartRun) return this.restartRun;
    this.restarting = true;
    const run = (async () => {
      try {
        if (!this.handle) throw new ClosedError('Closed', 'the backend is closed');
        const r = await native().backendRestart(this.handle, 10000);
        this.restarting = false;
        this.faultTimes = [];
        this.restarts++;
        this.emit('restart', { attempt, ok: true, us: r.us });
      } catch (e) {
        const err = e instanceof ClosedError ? e : fromNative(e);
        if (this.handle) {
          this.emit('restart', { attempt, ok: false, us: 0, error: err.message });
          this.scheduleRestart(attempt + 1, Math.min(delay * 2, this.policy.maxBackoffMs));
        }
        throw err;
      } finally {
        this.restartRun = undefined;
      }
    })();
    this.restartRun = run;
    return run;
  }

  /**
   * Re-initializes the backend now (what the restart policy does): from its latest snapshot if
   * it has one (loaded from one, or written one), else from its program. If it
   * fails, the promise rejects and the backend stays unavailable while the restart is retried
   * with the policy's back-off (each attempt is a 'restart' event).
   */
  async restart(): Promise<void> {
    if (!this.handle) throw new ClosedError('Closed', 'the backend is closed');
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    await this.attemptRestart(1, this.policy.backoffMs);
  }

  /** Loads `program` (built with farcall_add_program(... BACKEND)) and runs it to farcall_serve(). */
  static async load(program: string | Buffer, options: BackendOptions = {}): Promise<Backend> {
    const who = options?.context ?? 'backend';
    checkOptions(options, BACKEND_OPTIONS, who);
    const instances = options.instances ?? 1;
    if (!Number.isInteger(instances) || instances < 1 || instances > 64)
      throw new InvalidArgumentError('InvalidArgument', `${who}: instances must be a whole number from 1 to 64, got ${instances}`);
    const mem = checkMemoryMiB(options.memoryMiB ?? 32, 'memoryMiB', 16384); // 16 GiB: one instance's guest-physical slot
    const elf = await loadProgram(program, who);
    return Backend.create(elf, typeof program === 'string' ? program : '(buffer)', programLabel(who, program), options, {
      args: [typeof program === 'string' ? program : 'backend', ...(options.args ?? [])],
      env: envList(options.env),
      memoryMiB: mem,
      instances,
      initTimeoutMs: checkTimeoutMs(options.initTimeoutMs ?? 10000, 'initTimeoutMs'),
      entry: checkEntry(options.entry, 'backend'),
      files: checkFiles(options.files),
    });
  }

  /**
   * Restores a backend from a snapshot file (backend.snapshot(), `farcall snapshot --backend`)
   * without running its program: every instance has the state it had, at the same place in
   * memory (so a pool snapshot that used it still matches). Its restarts start from this file,
   * or from a later snapshot it writes.
   */
  static async fromSnapshot(file: string, options: SnapshotBackendOptions = {}): Promise<Backend> {
    const who = options?.context ?? 'backend';
    checkOptions(options, SNAPSHOT_BACKEND_OPTIONS, who);
    const snapshot = snapshotToRead(file);
    return Backend.create(Buffer.alloc(0), snapshot, `${who} (snapshot ${snapshot})`, options,
      { args: [], env: [], memoryMiB: 0, instances: 0, initTimeoutMs: 0, snapshot });
  }

  private static async create(elf: Buffer, name: string, label: string, options: SnapshotBackendOptions,
    how: { args: string[]; env: string[]; memoryMiB: number; instances: number; initTimeoutMs: number; entry?: string; snapshot?: string;
      files?: NativeFiles }): Promise<Backend> {
    const who = options?.context ?? 'backend';
    checkOptions(options.restart, RESTART_OPTIONS, `${who}: restart`);
    checkOptions(options.network, { allow: 'strings' } satisfies Record<keyof NonNullable<BackendOptions['network']>, OptionKind>, `${who}: network`);
    checkOptions(options.snapshots, { path: 'string', everyMs: 'number' } satisfies Record<keyof NonNullable<BackendOptions['snapshots']>, OptionKind>, `${who}: snapshots`);
    const every = options.snapshots?.everyMs;
    if (options.snapshots && (!Number.isInteger(every) || every! < 10))
      throw new InvalidArgumentError('InvalidArgument', `${who}: snapshots.everyMs must be a whole number of at least 10, got ${every}`);
    const periodic = options.snapshots ? snapshotToWrite(options.snapshots.path) : undefined;
    let self: Backend | undefined;
    const onEvent = (e: { kind: string; instance: number; entry: string; us: number; message: string }) => {
      if (!self) return;
      if (e.kind === 'call') self.emit('call', { instance: e.instance, entry: e.entry, us: e.us });
      else if (e.kind === 'fault') self.emit('fault', { instance: e.instance, entry: e.entry, message: e.message });
      else if (e.kind === 'output') self.emit('output', { instance: e.instance, stream: e.entry === 'stderr' ? 'stderr' : 'stdout', data: e.message });
      else self.emit('restore', { instance: e.instance, us: e.us, reason: e.message });
    };
    try {
      const r = await native().createBackend(elf, {
        ...how,
        callTimeoutMs: checkTimeoutMs(options.callTimeoutMs ?? 1000, 'callTimeoutMs'),
        netAllow: options.network?.allow ?? [],
        trusted: options.trusted === true,
        durability: checkDurability(options.durability),
        onEvent,
      });
      self = new Backend(r.handle, r.entries, r.initUs, name, options.restart ?? {});
    } catch (e) {
      throw how.snapshot ? fromNative(e) : labelled(e, label);
    }
    if (periodic) self.snapshotEvery(periodic, every!);
    return self;
  }

  private snapshotEvery(file: string, everyMs: number): void {
    const tick = () => {
      this.snapshotTimer = undefined;
      if (!this.handle) return;
      const next = () => {
        if (this.handle) this.snapshotTimer = setTimeout(tick, everyMs).unref();
      };
      if (this.restarting) return next();
      this.snapshot(file).then(
        (r) => this.emit('snapshot', { ok: true, path: r.path, bytes: r.bytes, us: r.us }),
        (e) => this.emit('snapshot', { ok: false, path: file, bytes: 0, us: 0, error: (e as Error).message }),
      ).finally(next);
    };
    this.snapshotTimer = setTimeout(tick, everyMs).unref();
  }

  /**
   * Writes every instance's state to `file` (atomically: a temporary file renamed over it,
   * synced). It waits for the calls in flight (up to `timeoutMs`, default 10 s) and holds every
   * instance meanwhile, so the state is one no call was in the middle of. Later restarts start
   * from this file. Backend.fromSnapshot(file) restores it.
   */
  async snapshot(file: string, opts: { timeoutMs?: number } = {}): Promise<SnapshotInfo> {
    if (!this.handle) throw new ClosedError('Closed', 'the backend is closed');
    const target = snapshotToWrite(file);
    try {
      const r = await native().backendSnapshot(this.handle, target, checkTimeoutMs(opts.timeoutMs ?? 10000, 'timeoutMs'));
      return { bytes: r.bytes, us: r.us, path: target };
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** @internal the native handle, for attaching to request pools. */
  nativeHandle(): NativeHandle {
    if (!this.handle) throw new ClosedError('Closed', 'the backend is closed');
    return this.handle;
  }

  // The VMM posts call events only while the flag is set (with the in-guest gate, each costs an
  // exit). Every way to add or remove a listener ends here, so the flag follows the listeners:
  // eventemitter3's addListener/removeListener are aliases that would bypass a lone override of
  // on/off, and removeAllListeners is a method of its own.
  private syncCallFlag(): void {
    if (this.handle) native().backendWantCalls(this.handle, this.listenerCount('call') > 0);
  }

  override on<T extends EventEmitter.EventNames<BackendEvents>>(event: T, fn: EventEmitter.EventListener<BackendEvents, T>, context?: unknown): this {
    super.on(event, fn, context);
    this.syncCallFlag();
    return this;
  }

  override addListener<T extends EventEmitter.EventNames<BackendEvents>>(event: T, fn: EventEmitter.EventListener<BackendEvents, T>, context?: unknown): this {
    return this.on(event, fn, context);
  }

  override once<T extends EventEmitter.EventNames<BackendEvents>>(event: T, fn: EventEmitter.EventListener<BackendEvents, T>, context?: unknown): this {
    super.once(event, fn, context); // emit() removes it through removeListener, which syncs
    this.syncCallFlag();
    return this;
  }

  override removeListener<T extends EventEmitter.EventNames<BackendEvents>>(event: T, fn?: EventEmitter.EventListener<BackendEvents, T>, context?: unknown, once?: boolean): this {
    super.removeListener(event, fn, context, once);
    this.syncCallFlag();
    return this;
  }

  override off<T extends EventEmitter.EventNames<BackendEvents>>(event: T, fn?: EventEmitter.EventListener<BackendEvents, T>, context?: unknown, once?: boolean): this {
    return this.removeListener(event, fn, context, once);
  }

  override removeAllListeners(event?: EventEmitter.EventNames<BackendEvents>): this {
    super.removeAllListeners(event);
    if (event === undefined || event === 'fault') super.on('fault', this.onFault); // the restart policy's own listener stays
    this.syncCallFlag();
    return this;
  }

  /**
   * Calls an entry with the byte-buffer convention
   * `int64_t entry(const void *in, size_t in_len, void *out, size_t out_cap)` and resolves with
   * the `result` bytes of `out` it reported. A negative result is a RequestFailedError carrying
   * it; a crash or timeout is a BackendFault/Timeout error and the instance is restored.
   */
  async call(entry: string, input: Uint8Array | string = Buffer.alloc(0), opts: CallOptions = {}): Promise<Buffer> {
    const r = await this.callRaw(entry, input, opts);
    if (r.result < 0) {
      const where = `backend ${this.path}: entry ${entry}`;
      // A call that did not return carries the VMM's words for it: vector, rip and faulting address.
      const rip = /rip (0x[0-9a-f]+)/.exec(r.fault ?? '')?.[1];
      const addr = /address (0x[0-9a-f]+)/.exec(r.fault ?? '')?.[1];
      throw fromNative({
        farcallCode: r.result <= -1001 && r.result >= -1004 ? 'BackendFault' : 'RequestFailed',
        message: r.fault ? `${where} did not return (${r.result}): ${r.fault}` : `${where} returned ${r.result}`,
        details: { result: r.result, ...(rip && { rip: Number(rip), ripHex: rip }), ...(addr && { address: Number(addr), addressHex: addr }) },
      });
    }
    return r.output;
  }

  /** Like call(), but resolves with the raw integer result as well (negative values included). */
  async callRaw(entry: string, input: Uint8Array | string = Buffer.alloc(0), opts: CallOptions = {}): Promise<{ result: number; output: Buffer; us: number; fault?: string }> {
    if (!this.handle) throw new ClosedError('Closed', 'the backend is closed');
    checkOptions(opts, CALL_OPTIONS, `backend ${this.path}: call`);
    if (!this.entries.includes(entry))
      throw new InvalidArgumentError('InvalidArgument', `backend ${this.path} has no entry point ${JSON.stringify(entry)} (entries: ${this.entries.join(', ') || 'none'})`);
    if (this.restarting) throw new BackendUnavailableError('BackendUnavailable', `backend ${this.path} is restarting`);
    const bytes = typeof input === 'string' ? Buffer.from(input) : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    try {
      const r = await native().backendCall(this.handle, entry, bytes, opts.outCap ?? 65536, checkTimeoutMs(opts.timeoutMs ?? 5000));
      this.hostLatency.add(r.us);
      return r;
    } catch (e) {
      throw fromNative(e);
    }
  }

  stats(): BackendStats {
    if (!this.handle) throw new ClosedError('Closed', 'the backend is closed');
    const s = native().backendStats(this.handle);
    return { restarts: this.restarts, available: !this.restarting, calls: s.calls, faults: s.faults, restores: s.restores, timeouts: s.timeouts, outputDropped: s.outputDropped, durability: s.durability, entry: s.entry as EntryFlavor, instances: s.instances, hostCalls: this.hostLatency.summary(), memoryAt: s.memoryAt };
  }

  /** Frees the backend's VMs once no request pool holds it. */
  close(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    if (!this.handle) return;
    native().closeBackend(this.handle);
    this.handle = null;
    this.removeAllListeners();
  }
}
