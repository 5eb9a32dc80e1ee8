// The fork benchmark (issue 3): what per-request isolation costs. One run, side by side:
//   - reset time after a request that dirtied k = 0, 1, 16, 64, 256, 1024 pages (the 'reset'
//     event's µs, measured in the VMM), with the number of pages it actually rewrote;
//   - the whole cycle of such a request: its run time plus its reset (so the cost of tracking
//     the writes, paid while the request runs, is counted, not only the copy back), and the
//     pool.run() round trip seen from JavaScript;
//   - fork creation from a master (stats().forkCreateUs over several pools), master init;
//   - pool.run() of an echo;
// beside a bare exit round trip measured in the same run (baseline 'exit-out') and TinyKVM's
// published copy-back reset and fork creation, measured on this kind of machine (issue 3).
//
//   node dist/bench/forks.js [--quick]
import * as path from 'path';

import { native, packageRoot } from '../src/native';
import { RequestPool, ResetEvent, RequestEvent } from '../src/pool';
import { row, usSince } from './lib';
import { BenchOptions, Figure, Section, standalone } from './report';

const KS = [0, 1, 16, 64, 256, 1024];
/** TinyKVM's copy-back reset and fork creation, as the issue gives them (µs, p50). */
const TINYKVM = { reset: { 0: 7.6, 64: 15.6, 256: 44 } as Record<number, number>, forkCreate: 652 };

const program = () => path.join(packageRoot(), 'build', 'guests', 'bench_req');

export async function run(opts: BenchOptions = {}): Promise<Section> {
  const quick = !!opts.quick;
  const log = opts.progress ?? (() => {});
  const t0 = Date.now();
  const ROUNDS = quick ? 2 : 5;
  const PER_K = quick ? 40 : 200; // requests per k, over all rounds
  const ECHOS = quick ? 100 : 500;
  const EXITS = quick ? 1000 : 5000;
  const POOLS = quick ? 4 : 12;

  log('forks: resets and request cycles');
  const pool = await RequestPool.create(program(), { size: 1, memoryMiB: 64, maxDirtyMiB: 32 });
  let lastReset: ResetEvent | undefined;
  let lastRequest: RequestEvent | undefined;
  pool.on('reset', (e) => (lastReset = e));
  pool.on('request', (e) => (lastRequest = e));

  const reset = new Map<number, number[]>(KS.map((k) => [k, []]));
  const pages = new Map<number, number[]>(KS.map((k) => [k, []]));
  const cycle = new Map<number, number[]>(KS.map((k) => [k, []]));
  const roundTrip = new Map<number, number[]>(KS.map((k) => [k, []]));
  const echo: number[] = [];
  const exitOut: number[] = [];
  let fullResets = 0;

  const one = async (req: string): Promise<number> => {
    lastReset = lastRequest = undefined;
    const t = process.hrtime.bigint();
    await pool.run(req);
    const us = usSince(t);
    const got = lastReset as ResetEvent | undefined;
    if (!got || !lastRequest) throw new Error('forks bench: no reset/request event for a request');
    if (got.kind !== 'fast') fullResets++;
    return us;
  };
  // Warm-up: page tables, the addon's worker, every k once.
  for (let i = 0; i < 20; i++) await one('echo:warm');
  for (const k of KS) for (let i = 0; i < 3; i++) await one(`dirty:${k}`);

  for (let round = 0; round < ROUNDS; round++) {
    const ns = await native().baseline('exit-out', EXITS / ROUNDS);
    exitOut.push(...Array.from(ns, (v) => v / 1000));
    for (const k of KS) {
      for (let i = 0; i < PER_K / ROUNDS; i++) {
        const rt = await one(`dirty:${k}`);
        reset.get(k)!.push(lastReset!.us);
        pages.get(k)!.push(lastReset!.pages);
        cycle.get(k)!.push(lastRequest!.runUs + lastReset!.us);
        roundTrip.get(k)!.push(rt);
      }
    }
    for (let i = 0; i < ECHOS / ROUNDS; i++) echo.push(await one('echo:0123456789abcdef'));
  }
  const forkStats = pool.forkStats();
  const poolStats = pool.stats();
  await pool.close();

  log('forks: fork creation');
  const forkCreate: number[] = [];
  const masterInit: number[] = [];
  for (let i = 0; i < POOLS; i++) {
    const p = await RequestPool.create(program(), { size: 1, memoryMiB: 64 });
    const s = p.stats();
    forkCreate.push(...s.forkCreateUs);
    masterInit.push(s.masterInitUs);
    await p.close();
  }
  // And forks made concurrently (a pool of 4 on 2 cores), as a pool fills up in practice.
  const forkCreate4: number[] = [];
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    const p = await RequestPool.create(program(), { size: 4, memoryMiB: 64 });
    forkCreate4.push(...p.stats().forkCreateUs);
    await p.close();
  }

  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const rows: Figure[] = [];
  rows.push({ ...row('exit-out', exitOut, 'bare ring-0 exit round trip, this run') });
  for (const [k, us] of Object.entries(TINYKVM.reset))
    rows.push({ ...row(`TinyKVM reset, ${k} pages`, [us], 'published, copy-back'), n: 0, reference: true });
  rows.push({ ...row('TinyKVM fork creation', [TINYKVM.forkCreate], 'published'), n: 0, reference: true });
  for (const k of KS) {
    const ref = TINYKVM.reset[k] !== undefined ? `TinyKVM reset, ${k} pages` : undefined;
    rows.push({
      ...row(`reset, ${k} pages dirtied`, reset.get(k)!, `${median(pages.get(k)!)} pages rewritten`),
      vs: ref ?? 'exit-out',
      goal: ref ? 1 : undefined,
    });
  }
  for (const k of KS) rows.push({ ...row(`request + reset, ${k} pages`, cycle.get(k)!, 'run µs + reset µs'), vs: 'exit-out' });
  for (const k of KS) rows.push({ ...row(`pool.run dirty:${k}`, roundTrip.get(k)!, 'JS round trip'), vs: 'exit-out' });
  rows.push({ ...row('pool.run echo', echo, '16 B, JS round trip'), vs: 'exit-out' });
  rows.push({ ...row('fork creation', forkCreate, `one fork per pool, ${POOLS} pools`), vs: 'TinyKVM fork creation', goal: 1 });
  rows.push({ ...row('fork creation, 4 at once', forkCreate4, 'pool of 4 on 2 cores'), vs: 'TinyKVM fork creation' });
  rows.push({ ...row('master init', masterInit, 'load + run to farcall_ready()'), vs: 'fork creation' });

  const p50 = (n: string) => rows.find((r) => r.name === n)!.p50;
  return {
    name: 'forks',
    title: 'Per-request forks and reset (issue 3)',
    rows,
    ratios: [
      ...Object.entries(TINYKVM.reset).map(([k, us]) => ({ name: `reset ${k} pages ÷ TinyKVM (p50)`, value: p50(`reset, ${k} pages dirtied`) / us, goal: 1 })),
      { name: 'fork creation ÷ TinyKVM (p50)', value: p50('fork creation') / TINYKVM.forkCreate, goal: 1 },
      { name: 'reset 0 pages ÷ exit-out (p50)', value: p50('reset, 0 pages dirtied') / p50('exit-out') },
    ],
    meta: {
      quick,
      iterations: { perK: PER_K, rounds: ROUNDS, echos: ECHOS, exits: EXITS, pools: POOLS },
      fullResetsDuringFastRuns: fullResets,
      pagesRewritten: Object.fromEntries(KS.map((k) => [k, { p50: median(pages.get(k)!), max: Math.max(...pages.get(k)!) }])),
      poolStats,
      forkStats,
      wallSeconds: (Date.now() - t0) / 1000,
    },
  };
}

if (require.main === module) standalone(run);
