// Broker: one object that owns the backends and request pools of a process, decides which
// pool may call which backend, forwards their events with names attached, and shuts down
// cleanly.
import { EventEmitter } from 'eventemitter3';

import { Backend, BackendCallEvent, BackendStats } from './backend';
import { BrokerConfig, loadConfigFile, validateConfig } from './config';
import * as fs from 'fs';

import { ClosedError, FarcallError, InvalidArgumentError, ProgramError, SnapshotError } from './errors';
import { RequestPool, RequestPoolStats, ResetKind } from './pool';

export interface BrokerEvents {
  request: (e: { pool: string; fork: number; ok: boolean; us: number }) => void;
  reset: (e: { pool: string; fork: number; kind: ResetKind; pages: number; us: number; reason?: string }) => void;
  timeout: (e: { pool: string; fork: number; error: FarcallError }) => void;
  fault: (e: { pool?: string; backend?: string; error?: FarcallError; instance?: number; entry?: string; message?: string }) => void;
  call: (e: { backend: string; instance: number; entry: string; us: number }) => void;
  restore: (e: { backend: string; instance: number; us: number; reason: string }) => void;
  restart: (e: { backend: string; attempt: number; ok: boolean; us: number; error?: string }) => void;
  snapshot: (e: { backend: string; ok: boolean; path: string; bytes: number; us: number; error?: string }) => void;
}

export interface PoolReport extends RequestPoolStats {
  exits: Record<string, number>;
}

export interface BrokerStats {
  uptimeMs: number;
  pools: Record<string, PoolReport>;
  backends: Record<string, BackendStats>;
}

// A program that cannot be loaded (not an ELF, a backend given as a pool, ...) is named by its
// config key and path, so the user knows which line of the config to fix.
function naming(e: unknown, key: string, file: string): unknown {
  if (e instanceof ProgramError || e instanceof SnapshotError) {
    e.message = `config ${key} (${file}): ${e.message}`;
    Object.assign(e.details, { configKey: key, path: file });
  }
  return e;
}

export class Broker extends EventEmitter<BrokerEvents> {
  private readonly backends = new Map<string, Backend>();
  private readonly pools = new Map<string, RequestPool>();
  private readonly started = Date.now();
  private closed = false;
  private tracing = false;
  private readonly tracers = new Map<string, (e: BackendCallEvent) => void>();

  private constructor() {
    super();
  }

  /** Starts everything a configuration names (an object, or the path of a .json/.toml file). */
  static async start(config: BrokerConfig | string): Promise<Broker> {
    const cfg = typeof config === 'string' ? loadConfigFile(config) : validateConfig(config);
    const broker = new Broker();
    try {
      for (const [name, b] of Object.entries(cfg.backends ?? {})) await broker.addBackend(name, b);
      for (const [name, p] of Object.entries(cfg.pools ?? {})) await broker.addPool(name, p);
    } catch (e) {
      await broker.close();
      throw e;
    }
    return broker;
  }

  async addBackend(name: string, b: NonNullable<BrokerConfig['backends']>[string]): Promise<Backend> {
    if (this.backends.has(name)) throw new InvalidArgumentError('InvalidArgument', `backend ${name} exists already`);
    // From its snapshot when there is one (a restart of the broker keeps the backend's state),
    // else from its program.
    const snapshots = b.snapshot && b.snapshotEveryMs ? { path: b.snapshot, everyMs: b.snapshotEveryMs } : undefined;
    const common = {
      callTimeoutMs: b.callTimeoutMs, restart: b.restart, network: b.network, trusted: b.trusted, durability: b.durability, snapshots,
      context: `backend ${name} (config backends.${name})`,
    };
    const fromSnapshot = b.snapshot !== undefined && (b.program === undefined || fs.existsSync(b.snapshot));
    const backend = await (fromSnapshot
      ? Backend.fromSnapshot(b.snapshot!, common)
      : Backend.load(b.program!, { ...common, instances: b.instances, memoryMiB: b.memoryMiB, initTimeoutMs: b.initTimeoutMs, args: b.args, env: b.env, entry: b.entry, files: b.files })
    ).catch((e) => Promise.reject(fromSnapshot ? naming(e, `backends.${name}.snapshot`, b.snapshot!) : naming(e, `backends.${name}.program`, b.program!)));
    backend.on('snapshot', (e) => this.emit('snapshot', { backend: name, ...e }));
    backend.on('fault', (e) => this.emit('fault', { backend: name, instance: e.instance, entry: e.entry, message: e.message }));
    backend.on('restore', (e) => this.emit('restore', { backend: name, ...e }));
    backend.on('restart', (e) => this.emit('restart', { backend: name, ...e }));
    this.backends.set(name, backend);
    this.traceBackend(name, backend);
    return backend;
  }

  async addPool(name: string, p: NonNullable<BrokerConfig['pools']>[string]): Promise<RequestPool> {
    if (this.pools.has(name)) throw new InvalidArgumentError('InvalidArgument', `pool ${name} exists already`);
    const backends: Record<string, Backend> = {};
    for (const b of p.backends ?? []) backends[b] = this.backend(b);
    const common = {
      size: p.size, concurrency: p.concurrency, timeoutMs: p.timeoutMs, maxDirtyMiB: p.maxDirtyMiB, maxQueue: p.maxQueue,
      maxResponseBytes: p.maxResponseBytes, backends, context: `pool ${name} (config pools.${name})`,
    };
    const pool = await (p.snapshot
      ? RequestPool.fromSnapshot(p.snapshot, common)
      : RequestPool.create(p.program!, { ...common, initTimeoutMs: p.initTimeoutMs, memoryMiB: p.memoryMiB, maxThreads: p.maxThreads, reserveMiB: p.reserveMiB, args: p.args, env: p.env, entry: p.entry, files: p.files })
    ).catch((e) => Promise.reject(p.snapshot ? naming(e, `pools.${name}.snapshot`, p.snapshot) : naming(e, `pools.${name}.program`, p.program!)));
    pool.on('request', (e) => this.emit('request', { pool: name, fork: e.fork, ok: e.ok, us: e.us }));
    pool.on('reset', (e) => this.emit('reset', { pool: name, ...e }));
    pool.on('timeout', (e) => this.emit('timeout', { pool: name, ...e }));
    pool.on('fault', (e) => this.emit('fault', { pool: name, ...e }));
    this.pools.set(name, pool);
    return pool;
  }

  /** Runs one request in a fresh fork of pool `pool`. */
  request(pool: string, bytes: Uint8Array | string): Promise<Buffer> {
    if (this.closed) return Promise.reject(new ClosedError('Closed', 'the broker is closed'));
    const p = this.pools.get(pool);
    if (!p) return Promise.reject(new InvalidArgumentError('InvalidArgument', `no request pool named ${pool}`));
    return p.run(bytes);
  }

  /** The named backend, e.g. to bind generated host stubs: new KeyValueClient(broker.backend('kv')). */
  backend(name: string): Backend {
    const b = this.backends.get(name);
    if (!b) throw new InvalidArgumentError('InvalidArgument', `no backend named ${name}`);
    return b;
  }

  pool(name: string): RequestPool {
    const p = this.pools.get(name);
    if (!p) throw new InvalidArgumentError('InvalidArgument', `no request pool named ${name}`);
    return p;
  }

  /** Forwards every backend 'call' (costly: one event-loop hop per call, and an exit per call on the in-guest gate). */
  traceCalls(on: boolean): void {
    this.tracing = on;
    for (const [name, b] of this.backends) this.traceBackend(name, b);
  }

  // Adds or removes only the broker's own listener: a user's listener on the backend stays.
  private traceBackend(name: string, b: Backend): void {
    let fn = this.tracers.get(name);
    if (this.tracing && !fn) {
      fn = (e) => this.emit('call', { backend: name, ...e });
      this.tracers.set(name, fn);
      b.on('call', fn);
    } else if (!this.tracing && fn) {
      this.tracers.delete(name);
      b.off('call', fn);
    }
  }

  stats(): BrokerStats {
    const pools: Record<string, PoolReport> = {};
    for (const [name, p] of this.pools) {
      const exits: Record<string, number> = {};
      for (const f of p.forkStats()) {
        for (const [k, v] of Object.entries((f as { exits: Record<string, number> }).exits)) exits[k] = (exits[k] ?? 0) + v;
      }
      pools[name] = { ...p.stats(), exits };
    }
    const backends: Record<string, BackendStats> = {};
    for (const [name, b] of this.backends) backends[name] = b.stats();
    return { uptimeMs: Date.now() - this.started, pools, backends };
  }

  /** Drains in-flight requests, then frees every VM. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
    for (const b of this.backends.values()) b.close();
    this.backends.clear();
    this.removeAllListeners();
  }
}
