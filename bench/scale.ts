// The scale benchmark (issue 17): thousands of forks, bursts and contention. One run, ratios
// inside it:
//   - fork creation and resets of a probe pool with 0, 1,000 and 2,000 other VMs in the process,
//     and the threads and fds the 2,048 forks hold; beside it, bare KVM VM creation with as many
//     VMs present (bench/ipc/vm_create.c, no farcall code: the kernel's share of the growth),
//     and the same probe pool made again from the first one's retired VMs (src/vmstock.ts);
//   - a burst of 256 requests at a pool of 256 forks vs a pool of the core count;
//   - the request + reset cycle vs pages written, across maxDirtyMiB (a linear fit, the worst step);
//   - far calls from 1, 4 and 16 forks sharing one backend instance (CPU per call), and the CPU
//     that callers waiting behind a 300 ms call spend;
//   - where the time of a pool.run() goes (VMM run, reset, the rest: hand-offs and JS).
//
//   node dist/bench/scale.js [--quick]
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Backend } from '../src/backend';
import { native, packageRoot } from '../src/native';
import { RequestEvent, RequestPool, ResetEvent } from '../src/pool';
import { vmStock } from '../src/vmstock';
import { row, summarize, usSince } from './lib';
import { BenchOptions, Figure, Section, standalone } from './report';

const guest = (name: string) => path.join(packageRoot(), 'build', 'guests', name);
const counter = guest('req_counter');
const MEM = 16;
const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const p50 = (a: number[]) => summarize(a).p50;

function threads(): number {
  return fs.readdirSync('/proc/self/task').length;
}
function fds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Fork creation and reset costs of a fresh probe pool, with whatever VMs exist around it. */
async function probe(forks: number, resets: number): Promise<{ create: number[]; fast: number[]; full: number[] }> {
  const pool = await RequestPool.create(counter, { size: forks, memoryMiB: MEM, args: [String(MEM)], maxQueue: 1e6 });
  const fast: number[] = [];
  const full: number[] = [];
  pool.on('reset', (e) => (e.kind === 'fast' ? fast : full).push(e.us));
  try {
    for (let i = 0; i < resets; i++) await pool.run('dirty:16');
    for (let i = 0; i < Math.max(3, resets / 10); i++) await pool.run('crash').catch(() => undefined);
    return { create: pool.stats().forkCreateUs, fast, full };
  } finally {
    await pool.close();
  }
}

/** bench/ipc/vm_create.c's steps per stage, µs; null when it is not built or fails. */
function bareVmCreate(probes: number, stages: number[]): Record<number, { total: number[]; createVm: number[] }> | null {
  const bin = path.join(packageRoot(), 'build', 'bench', 'vm_create');
  if (!fs.existsSync(bin)) return null;
  const r = spawnSync(bin, [String(probes), ...stages.map(String)], { encoding: 'utf8', timeout: 600000, maxBuffer: 16 << 20 });
  if (r.status !== 0) return null;
  const out: Record<number, { total: number[]; createVm: number[] }> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [stage, createVm, , , , , total] = line.split(' ').map(Number);
    (out[stage] ??= { total: [], createVm: [] }).total.push(total / 1000);
    out[stage].createVm.push(createVm / 1000);
  }
  return out;
}

/** Process CPU (ms) over a 300 ms call into a one-instance trusted backend, with `n` callers waiting. */
async function waitersCpu(n: number): Promise<number[]> {
  const backend = await Backend.load(guest('counter_backend'), { memoryMiB: 16, trusted: true, durability: 'instance', callTimeoutMs: 5000 });
  const pool = await RequestPool.create(guest('caller'), { size: 4, concurrency: 4, backends: { counter: backend } });
  const out: number[] = [];
  try {
    await Promise.all([pool.run('add:1'), pool.run('add:1')]);
    for (let i = 0; i < 3; i++) {
      const c0 = process.cpuUsage();
      const holder = pool.run('nap:300');
      await new Promise((r) => setTimeout(r, 20));
      await Promise.all([holder, ...Array.from({ length: n }, () => pool.run('add:1'))]);
      const c = process.cpuUsage(c0);
      out.push((c.user + c.system) / 1000);
    }
  } finally {
    await pool.close();
    backend.close();
  }
  return out;
}

export async function run(opts: BenchOptions = {}): Promise<Section> {
  const quick = !!opts.quick;
  const log = opts.progress ?? (() => {});
  const t0 = Date.now();
  const rows: Figure[] = [];
  const ratios: Section['ratios'] = [];
  const meta: Record<string, unknown> = { quick, cores, executor: native().executorInfo() };

  // 1. Fork creation and resets with 0, 1,000 and 2,000 VMs present.
  log('scale: fork creation with VMs accumulating');
  const PROBE = quick ? 16 : 32;
  const RESETS = quick ? 30 : 100;
  const stages = [0, 1000, 2000];
  const held: RequestPool[] = [];
  const base = { threads: threads(), fds: fds() };
  let present = 0;
  const probes: Record<number, Awaited<ReturnType<typeof probe>>> = {};
  const reuse: Record<number, number[]> = {};  // fork creation when retired VMs wait in the stock
  const stockMax = vmStock().max;
  vmStock({ max: 0 });  // the first probe gets VMs fresh from KVM, like every held pool
  try {
    for (const want of stages) {
      while (present < want) {
        const n = Math.min(250, want - present);
        held.push(await RequestPool.create(counter, { size: n, memoryMiB: MEM, args: [String(MEM)], maxQueue: 1e6 }));
        present += n + 1; // the forks and their master
      }
      // Every held fork has run once (KVM starts its per-VM worker at a VM's first run).
      for (const p of held) await Promise.all(Array.from({ length: p.stats().forks }, () => p.run('echo:x')));
      vmStock({ max: 0 });
      probes[want] = await probe(PROBE, RESETS);  // fresh VMs
      // The same pool again right after the first closed: its master and forks take the first
      // one's retired VMs instead of asking KVM (src/vmstock.ts).
      vmStock({ max: Math.max(stockMax, PROBE + 1) });
      await (await RequestPool.create(counter, { size: PROBE, memoryMiB: MEM, args: [String(MEM)] })).close();
      reuse[want] = (await probe(PROBE, 1)).create;
      rows.push({ ...row(`fork creation, ${want} VMs present`, probes[want].create, `probe pool of ${PROBE}`), vs: want ? 'fork creation, 0 VMs present' : undefined, goal: want ? 1.2 : undefined });
      rows.push({ ...row(`fork creation from retired VMs, ${want} VMs present`, reuse[want], `probe pool of ${PROBE}, VM stock`), vs: 'fork creation, 0 VMs present', goal: want ? 1.2 : undefined });
      rows.push({ ...row(`fast reset, ${want} VMs present`, probes[want].fast, '16 pages'), vs: want ? 'fast reset, 0 VMs present' : undefined });
      rows.push({ ...row(`full reset, ${want} VMs present`, probes[want].full, 'after a fault'), vs: want ? 'full reset, 0 VMs present' : undefined });
    }
    const forks = held.reduce((n, p) => n + p.stats().forks, 0);
    meta.heldForks = forks;
    meta.heldVms = present;
    meta.threadsFor2000Forks = { before: base.threads, after: threads(), executorThreads: native().executorInfo().started };
    meta.fdsFor2000Forks = { before: base.fds, after: fds(), perVm: (fds() - base.fds) / present };
    log(`scale: ${forks} forks: ${threads() - base.threads} more threads (KVM's per-VM workers included), ${fds() - base.fds} more fds`);
  } finally {
    for (const p of held) await p.close();
    vmStock({ max: stockMax });
  }
  // The same growth without farcall: a C program that only creates VMs as forks do.
  log('scale: bare KVM VM creation with VMs accumulating');
  const bare = bareVmCreate(PROBE, stages);
  for (const n of stages) {
    if (!bare) break;
    rows.push({ ...row(`bare KVM VM creation, ${n} VMs present`, bare[n].total, 'vm_create.c: VM, 2 memslots, vCPU, 1 run'), vs: n ? 'bare KVM VM creation, 0 VMs present' : undefined });
    rows.push({ ...row(`bare KVM_CREATE_VM alone, ${n} VMs present`, bare[n].createVm, 'the ioctl'), vs: n ? 'bare KVM_CREATE_VM alone, 0 VMs present' : undefined });
  }
  for (const n of [1000, 2000]) {
    if (bare) ratios.push({ name: `bare KVM VM creation, ${n} VMs ÷ 0 (p50)`, value: p50(bare[n].total) / p50(bare[0].total) });
    ratios.push({ name: `fork creation, ${n} VMs ÷ 0 (p50)`, value: p50(probes[n].create) / p50(probes[0].create), goal: 1.2 });
    ratios.push({ name: `fork creation from retired VMs, ${n} VMs ÷ fresh, 0 VMs (p50)`, value: p50(reuse[n]) / p50(probes[0].create), goal: 1.2 });
    ratios.push({ name: `fast reset, ${n} VMs ÷ 0 (p50)`, value: p50(probes[n].fast) / p50(probes[0].fast), goal: 1.2 });
    ratios.push({ name: `full reset, ${n} VMs ÷ 0 (p50)`, value: p50(probes[n].full) / p50(probes[0].full), goal: 1.2 });
  }

  // 2. A burst of 256 requests (~2 ms of CPU each) at a pool of 256 and at a pool of the cores.
  log('scale: bursts');
  const burst = async (size: number, concurrency?: number) => {
    const pool = await RequestPool.create(counter, { size, concurrency, memoryMiB: MEM, args: [String(MEM)], maxQueue: 256, timeoutMs: 5000 });
    try {
      await Promise.all(Array.from({ length: size }, () => pool.run('burn:1')));
      const lat: number[] = [];
      const t = process.hrtime.bigint();
      const out = await Promise.allSettled(Array.from({ length: 256 }, async () => {
        const s = process.hrtime.bigint();
        await pool.run('burn:20');
        lat.push(usSince(s));
      }));
      return { wall: usSince(t), lat, timeouts: pool.stats().timeouts, failed: out.filter((o) => o.status === 'rejected').length };
    } finally {
      await pool.close();
    }
  };
  const small = await burst(cores);
  const big = await burst(256);
  const bigAll = await burst(256, 256);
  rows.push({ ...row(`burst of 256, pool of ${cores}`, small.lat, `wall ${(small.wall / 1000).toFixed(0)} ms, ${small.timeouts} timeouts`) });
  rows.push({ ...row('burst of 256, pool of 256', big.lat, `concurrency ${cores}: wall ${(big.wall / 1000).toFixed(0)} ms, ${big.timeouts} timeouts`), vs: `burst of 256, pool of ${cores}` });
  rows.push({ ...row('burst of 256, pool of 256, concurrency 256', bigAll.lat, `wall ${(bigAll.wall / 1000).toFixed(0)} ms, ${bigAll.timeouts} timeouts`), vs: `burst of 256, pool of ${cores}` });
  ratios.push({ name: `burst wall, pool of 256 ÷ pool of ${cores}`, value: big.wall / small.wall, goal: 1.5 });
  ratios.push({ name: 'burst timeouts, pool of 256', value: big.timeouts + big.failed, goal: 0 });
  meta.bursts = { small, big, bigAll: { ...bigAll, lat: undefined }, note: 'lat arrays in rows' };
  (meta.bursts as Record<string, unknown>).small = { wall: small.wall, timeouts: small.timeouts };
  (meta.bursts as Record<string, unknown>).big = { wall: big.wall, timeouts: big.timeouts };

  // 3. The request + reset cycle vs pages written, across maxDirtyMiB (2 MiB = 512 pages).
  log('scale: reset cycle across maxDirtyMiB');
  const KS = [0, 128, 256, 384, 448, 512, 576, 640, 768, 1024];
  const PER = quick ? 8 : 20;
  const cyc = await RequestPool.create(counter, { size: 1, memoryMiB: 64, args: ['64'], maxDirtyMiB: 2 });
  let lastReset: ResetEvent | undefined;
  let lastReq: RequestEvent | undefined;
  cyc.on('reset', (e) => (lastReset = e));
  cyc.on('request', (e) => (lastReq = e));
  const cycle: Record<number, number[]> = {};
  const kinds: Record<number, string> = {};
  try {
    for (const k of KS) {
      for (let i = 0; i < 3; i++) await cyc.run(`dirty:${k}`);
      cycle[k] = [];
      for (let i = 0; i < PER; i++) {
        await cyc.run(`dirty:${k}`);
        cycle[k].push(lastReq!.runUs + lastReset!.us);
      }
      kinds[k] = lastReset!.kind;
      rows.push({ ...row(`cycle, ${k} pages written`, cycle[k], `maxDirty 512 pages, ${lastReset!.kind} resets`), vs: 'cycle, 0 pages written' });
    }
  } finally {
    await cyc.close();
  }
  // The linear trend of the fast-reset regime (least squares through the p50s below the limit),
  // extended past it: the worst point above that line is the cliff.
  const xs = KS, ys = KS.map((k) => p50(cycle[k]));
  const below = xs.map((x, i) => [x, ys[i]]).filter(([x]) => x < 512);
  const mx = below.reduce((a, [x]) => a + x, 0) / below.length, my = below.reduce((a, [, y]) => a + y, 0) / below.length;
  const slope = below.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / below.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const fit = (x: number) => Math.max(my + slope * (x - mx), ys[0]);
  const worst = Math.max(...xs.map((x, i) => ys[i] / fit(x)));
  ratios.push({ name: 'reset cycle, worst point ÷ linear trend below maxDirtyMiB', value: worst, goal: 2 });
  meta.cycle = { pages: xs, p50Us: ys, kinds, slopeUsPerPage: slope };

  // 4. Far calls from 1, 4 and 16 forks sharing one backend instance.
  log('scale: far calls, forks per instance');
  const CALLS = quick ? 200 : 1000;
  const perFork: Record<number, { cpuPerCall: number; p50: number; p99: number; callsPerSec: number }> = {};
  const backend = await Backend.load(guest('bench_backend'), { instances: 1, memoryMiB: 32, trusted: true });
  let gate = 'none';
  try {
    for (const f of [1, 4, 16]) {
      const pool = await RequestPool.create(guest('bench_gate_caller'), { size: f, concurrency: f, memoryMiB: 32, backends: { bench: backend }, maxQueue: 1e6 });
      gate = pool.stats().gate;
      try {
        await Promise.all(Array.from({ length: f }, () => pool.run('call:50:0')));
        const reqs = Math.max(f, Math.round((CALLS * 8) / 200));
        const c0 = process.cpuUsage();
        const t = process.hrtime.bigint();
        const lat: number[] = [];
        await Promise.all(Array.from({ length: reqs }, async () => {
          const r = await pool.run('call:200:0');
          for (let i = 0; i < r.length / 4; i++) lat.push(r.readUInt32LE(i * 4));
        }));
        const wall = usSince(t);
        const c = process.cpuUsage(c0);
        const calls = reqs * 200;
        const s = summarize(lat);
        perFork[f] = { cpuPerCall: (c.user + c.system) / calls, p50: s.p50, p99: s.p99, callsPerSec: calls / (wall / 1e6) };
      } finally {
        await pool.close();
      }
      rows.push({ ...row(`${gate} far call CPU, ${f} forks per instance`, [perFork[f].cpuPerCall], `µs of process CPU per call (incl. request overhead); ${Math.round(perFork[f].callsPerSec)} calls/s; call p50 ${perFork[f].p50}, p99 ${perFork[f].p99} TSC ticks`), vs: f > 1 ? `${gate} far call CPU, 1 forks per instance` : undefined, goal: f > 1 ? 1.2 : undefined });
    }
  } finally {
    backend.close();
  }
  // Callers waiting behind a call that holds the only instance for 300 ms (asleep inside it):
  // the process CPU they spend meanwhile, against the same 300 ms with nobody waiting.
  log('scale: waiters behind a long call');
  const idle = await waitersCpu(0), waiting = await waitersCpu(3);
  rows.push({ ...row('300 ms call, nobody waiting', idle, 'ms of process CPU (µs column = ms)') });
  rows.push({ ...row('300 ms call, 3 callers waiting', waiting, 'ms of process CPU (µs column = ms)'), vs: '300 ms call, nobody waiting' });
  ratios.push({ name: 'CPU of 3 waiters behind a 300 ms call, ms (p50 of 3 runs, less nobody waiting)', value: p50(waiting) - p50(idle) });
  ratios.push({ name: `far call CPU, 16 forks per instance ÷ 1 (${gate} gate)`, value: perFork[16].cpuPerCall / perFork[1].cpuPerCall, goal: 1.2 });
  ratios.push({ name: `far call throughput, 16 forks per instance ÷ 1 (${gate} gate)`, value: perFork[16].callsPerSec / perFork[1].callsPerSec });
  meta.farCalls = { gate, perFork, latencyUnit: 'TSC ticks' };

  // 5. Where a pool.run() goes: the VMM's run, the reset, and the rest (hand-offs, JS).
  log('scale: pool.run profile');
  const prof = await RequestPool.create(counter, { size: 1, memoryMiB: MEM, args: [String(MEM)] });
  const rt: number[] = [], runUs: number[] = [], resetUs: number[] = [], rest: number[] = [];
  prof.on('reset', (e) => (lastReset = e));
  prof.on('request', (e) => (lastReq = e));
  try {
    for (let i = 0; i < 50; i++) await prof.run('echo:warm');
    for (let i = 0; i < (quick ? 200 : 1000); i++) {
      const t = process.hrtime.bigint();
      await prof.run('echo:0123456789abcdef');
      const us = usSince(t);
      rt.push(us);
      runUs.push(lastReq!.runUs);
      resetUs.push(lastReset!.us);
      rest.push(us - lastReq!.runUs - lastReset!.us);
    }
  } finally {
    await prof.close();
  }
  rows.push({ ...row('pool.run echo, round trip', rt, 'JS promise to promise') });
  rows.push({ ...row('pool.run echo: VMM run', runUs, 'KVM_RUN and exits'), vs: 'pool.run echo, round trip' });
  rows.push({ ...row('pool.run echo: reset', resetUs, 'copy back + registers'), vs: 'pool.run echo, round trip' });
  rows.push({ ...row('pool.run echo: the rest', rest, 'thread hand-offs, N-API, JS'), vs: 'pool.run echo, round trip' });

  meta.wallSeconds = (Date.now() - t0) / 1000;
  return { name: 'scale', title: 'Scale and overload (issue 17)', rows, ratios, meta };
}

if (require.main === module) standalone(run);
