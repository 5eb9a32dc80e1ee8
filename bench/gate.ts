// The gate benchmark (issue 4): what a far call from a request VM into a backend costs, beside
// the alternatives, in one run:
//   - guest→backend call round trip (no argument; 16 B and 4 KiB read and rewritten in place),
//     timed per call inside the guest with the TSC (bench/guests/gate_caller.c), converted with a
//     calibration against the guest's clock taken in the same run;
//   - the bare ring-3 trap round trip (native baseline 'trap-mmio') — two of them are the floor
//     of the exit-based gate on this platform;
//   - host→backend call from TypeScript (Backend.callRaw), as JavaScript sees it and as the VMM
//     times it;
//   - round trips between two host processes (bench/ipc/ipc_rtt.c, pinned with taskset): unix
//     socket, pipe, eventfd + shared memory, on one core and across the two cores, and a
//     shared-memory spin across cores;
// then the same again with both cores kept busy by two spinning processes, to compare p99s.
//
//   node dist/bench/gate.js [--quick]
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { Backend } from '../src/backend';
import { native, packageRoot } from '../src/native';
import { RequestPool } from '../src/pool';
import { row, usSince } from './lib';
import { BenchOptions, Figure, Section, standalone } from './report';

const guest = (n: string) => path.join(packageRoot(), 'build', 'guests', n);
const ipcBin = () => path.join(packageRoot(), 'build', 'bench', 'ipc_rtt');

const CALLS_PER_REQUEST = 500;

interface Ctx {
  pool: RequestPool;
  backend: Backend;
  /** Nanoseconds per TSC tick in the guest. */
  nsPerTick: number;
}

/** n per-call round trips (µs) of `cmd` ('call:…:SIZE' or 'tsc:…'), CALLS_PER_REQUEST per request. */
export async function guestCalls(ctx: Pick<Ctx, 'pool' | 'nsPerTick'>, kind: 'call' | 'tsc', size: number, n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const k = Math.min(CALLS_PER_REQUEST, n - out.length);
    const r = await ctx.pool.run(kind === 'call' ? `call:${k}:${size}` : `tsc:${k}`);
    if (r.length !== k * 4) throw new Error(`gate bench: expected ${k * 4} bytes, got ${r.length}: ${r.toString().slice(0, 80)}`);
    for (let i = 0; i < k; i++) out.push((r.readUInt32LE(i * 4) * ctx.nsPerTick) / 1000);
  }
  return out;
}

export async function calibrate(pool: RequestPool): Promise<{ nsPerTick: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [ticks, ns] = (await pool.run('cal')).toString().split(' ').map(Number);
    samples.push(ns / ticks);
  }
  samples.sort((a, b) => a - b);
  return { nsPerTick: samples[1], samples };
}

async function hostCalls(ctx: Ctx, size: number, n: number): Promise<{ js: number[]; vmm: number[] }> {
  const input = Buffer.alloc(size, 0x61);
  const js: number[] = [];
  const vmm: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = await ctx.backend.callRaw('host_echo', input, { outCap: Math.max(64, size) });
    js.push(usSince(t));
    vmm.push(r.us);
    if (r.result !== size) throw new Error(`gate bench: host_echo returned ${r.result}`);
  }
  return { js, vmm };
}

async function trap(n: number): Promise<number[]> {
  return Array.from(await native().baseline('trap-mmio', n), (v) => v / 1000);
}

type IpcMode = 'unix' | 'pipe' | 'eventfd' | 'spin';
const IPC: Array<{ name: string; mode: IpcMode; cpus: string; a: number; b: number; busy: boolean }> = [
  { name: 'unix socket, same core', mode: 'unix', cpus: '0', a: 0, b: 0, busy: true },
  { name: 'unix socket, across cores', mode: 'unix', cpus: '0,1', a: 0, b: 1, busy: true },
  { name: 'pipe, same core', mode: 'pipe', cpus: '0', a: 0, b: 0, busy: true },
  { name: 'pipe, across cores', mode: 'pipe', cpus: '0,1', a: 0, b: 1, busy: true },
  { name: 'eventfd + shm, same core', mode: 'eventfd', cpus: '0', a: 0, b: 0, busy: true },
  { name: 'eventfd + shm, across cores', mode: 'eventfd', cpus: '0,1', a: 0, b: 1, busy: true },
  { name: 'shm spin, across cores', mode: 'spin', cpus: '0,1', a: 0, b: 1, busy: false },
];

function ipc(mode: IpcMode, cpus: string, a: number, b: number, n: number): number[] {
  const r = spawnSync('taskset', ['-c', cpus, ipcBin(), mode, String(n), String(a), String(b)], {
    encoding: 'utf8', timeout: 120000, maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`ipc_rtt ${mode} failed (${r.status ?? r.signal}): ${r.stderr || r.error}`);
  return r.stdout.trim().split('\n').map((l) => Number(l) / 1000);
}

/** Two processes spinning, one pinned to each core. */
function startBusy(): ChildProcess[] {
  return ['0', '1'].map((c) => spawn('taskset', ['-c', c, ipcBin(), 'busy'], { stdio: 'ignore' }));
}

async function stopBusy(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once('exit', () => resolve());
          p.kill('SIGKILL');
        }),
    ),
  );
}

interface Pass {
  trap: number[];
  tsc: number[];
  nop: number[];
  c16: number[];
  c4k: number[];
  h16: { js: number[]; vmm: number[] };
  h4k: { js: number[]; vmm: number[] };
  ipc: Map<string, number[]>;
}

async function pass(ctx: Ctx, busy: boolean, quick: boolean, log: (l: string) => void): Promise<Pass> {
  const ROUNDS = quick ? 2 : 4;
  const TRAPS = (quick ? 2000 : 10000) / ROUNDS;
  const CALLS = (quick ? 1000 : busy ? 4000 : 8000) / ROUNDS;
  const HOST = (quick ? 200 : busy ? 1000 : 2000) / ROUNDS;
  const PINGS = (quick ? 1000 : busy ? 2000 : 6000) / ROUNDS;
  const p: Pass = { trap: [], tsc: [], nop: [], c16: [], c4k: [], h16: { js: [], vmm: [] }, h4k: { js: [], vmm: [] }, ipc: new Map() };
  for (const x of IPC) p.ipc.set(x.name, []);
  // Rounds interleave every kind, so that drift of the host hits them alike.
  for (let round = 0; round < ROUNDS; round++) {
    log(`gate: ${busy ? 'busy' : 'quiet'} pass, round ${round + 1}/${ROUNDS}`);
    p.trap.push(...(await trap(TRAPS)));
    if (!busy) p.tsc.push(...(await guestCalls(ctx, 'tsc', 0, CALLS)));
    p.nop.push(...(await guestCalls(ctx, 'call', 0, CALLS)));
    p.c16.push(...(await guestCalls(ctx, 'call', 16, CALLS)));
    p.c4k.push(...(await guestCalls(ctx, 'call', 4096, CALLS)));
    for (const [dst, size] of [[p.h16, 16], [p.h4k, 4096]] as const) {
      const h = await hostCalls(ctx, size, HOST);
      dst.js.push(...h.js);
      dst.vmm.push(...h.vmm);
    }
    for (const x of IPC) if (!busy || x.busy) p.ipc.get(x.name)!.push(...ipc(x.mode, x.cpus, x.a, x.b, PINGS));
  }
  return p;
}

export async function run(opts: BenchOptions = {}): Promise<Section> {
  const quick = !!opts.quick;
  const log = opts.progress ?? (() => {});
  const t0 = Date.now();
  if (!fs.existsSync(ipcBin())) throw new Error(`gate bench: ${ipcBin()} is missing (run node scripts/setup.js)`);
  const backend = await Backend.load(guest('bench_backend'), { instances: 1, memoryMiB: 32 });
  const pool = await RequestPool.create(guest('bench_gate_caller'), { size: 1, memoryMiB: 32, backends: { bench: backend } });
  try {
    const cal = await calibrate(pool);
    const ctx: Ctx = { pool, backend, nsPerTick: cal.nsPerTick };
    // Warm-up.
    await guestCalls(ctx, 'call', 16, 500);
    await hostCalls(ctx, 16, 100);
    await trap(500);

    const quiet = await pass(ctx, false, quick, log);
    const procs = startBusy();
    let busy: Pass;
    try {
      await new Promise((r) => setTimeout(r, 200));
      busy = await pass(ctx, true, quick, log);
    } finally {
      await stopBusy(procs);
    }

    const rows: Figure[] = [];
    const add = (f: Figure) => rows.push(f);
    const TRAP = 'ring-3 trap (trap-mmio)';
    const C16 = 'gate call, 16 B in place';
    add({ ...row(TRAP, quiet.trap, 'one exit and back: the unit of the gate') });
    add({ ...row('gate call, no argument', quiet.nop, 'nop(), timed in the guest'), vs: TRAP, vsFactor: 2, goal: 1.15 });
    add({ ...row(C16, quiet.c16, 'backend reads + rewrites the caller buffer'), vs: TRAP, vsFactor: 2, goal: 1.15 });
    add({ ...row('gate call, 4 KiB in place', quiet.c4k, 'same, 4 KiB'), vs: TRAP, vsFactor: 2, goal: 1.15 });
    add({ ...row('host call, 16 B', quiet.h16.js, 'Backend.callRaw, JS round trip'), vs: TRAP, goal: 2 });
    add({ ...row('host call, 4 KiB', quiet.h4k.js, 'Backend.callRaw, JS round trip'), vs: TRAP, goal: 2 });
    add({ ...row('host call, 16 B, in the VMM', quiet.h16.vmm, 'callRaw result.us'), vs: TRAP });
    for (const x of IPC) add({ ...row(x.name, quiet.ipc.get(x.name)!, 'C, 16 B each way'), vs: C16 });
    add({ ...row('TSC timing overhead', quiet.tsc, 'empty timed interval in the guest') });
    const busyNames: Array<[string, number[]]> = [
      [TRAP, busy.trap],
      ['gate call, no argument', busy.nop],
      [C16, busy.c16],
      ['gate call, 4 KiB in place', busy.c4k],
      ['host call, 16 B', busy.h16.js],
      ...IPC.filter((x) => x.busy).map((x) => [x.name, busy.ipc.get(x.name)!] as [string, number[]]),
    ];
    for (const [name, v] of busyNames) add({ ...row(`${name} [busy]`, v, 'both cores busy'), vs: name, on: 'p99' });

    const get = (n: string) => rows.find((r) => r.name === n)!;
    const trapP50 = get(TRAP).p50;
    const ratios = [
      { name: 'gate call 16 B ÷ (2 × ring-3 trap) (p50)', value: get(C16).p50 / (2 * trapP50), goal: 1.15 },
      { name: 'gate call 4 KiB ÷ (2 × ring-3 trap) (p50)', value: get('gate call, 4 KiB in place').p50 / (2 * trapP50), goal: 1.15 },
      { name: 'gate call nop ÷ (2 × ring-3 trap) (p50)', value: get('gate call, no argument').p50 / (2 * trapP50), goal: 1.15 },
      { name: 'host call 16 B ÷ ring-3 trap (p50, JS round trip)', value: get('host call, 16 B').p50 / trapP50, goal: 2 },
      { name: 'host call 16 B in the VMM ÷ ring-3 trap (p50)', value: get('host call, 16 B, in the VMM').p50 / trapP50 },
      { name: 'gate call 16 B p99: busy ÷ quiet', value: get(`${C16} [busy]`).p99 / get(C16).p99 },
      { name: 'unix socket across cores p99: busy ÷ quiet', value: get('unix socket, across cores [busy]').p99 / get('unix socket, across cores').p99 },
    ];
    const distributions: Record<string, number[]> = {
      [C16]: quiet.c16,
      'gate call, 4 KiB in place': quiet.c4k,
      [TRAP]: quiet.trap,
      'host call, 16 B': quiet.h16.js,
      ...Object.fromEntries(IPC.map((x) => [x.name, quiet.ipc.get(x.name)!])),
      [`${C16} [busy]`]: busy.c16,
      'gate call, 4 KiB in place [busy]': busy.c4k,
      [`${TRAP} [busy]`]: busy.trap,
      'host call, 16 B [busy]': busy.h16.js,
      ...Object.fromEntries(IPC.filter((x) => x.busy).map((x) => [`${x.name} [busy]`, busy.ipc.get(x.name)!])),
    };
    return {
      name: 'gate',
      title: 'Far calls through the gate, beside traps and IPC (issue 4)',
      rows,
      ratios,
      distributions,
      meta: {
        quick,
        tsc: { nsPerTick: cal.nsPerTick, calibrations: cal.samples, ghz: 1 / cal.nsPerTick },
        callsPerRequest: CALLS_PER_REQUEST,
        backendStats: backend.stats(),
        poolStats: pool.stats(),
        busyLoad: 'two processes spinning, pinned one to each core (taskset), during the [busy] pass',
        wallSeconds: (Date.now() - t0) / 1000,
      },
    };
  } finally {
    await pool.close();
    backend.close();
  }
}

if (require.main === module) standalone(run);
