// The snapshot benchmark (issue 16), one run:
//   - request pools of masters that touch 1, 64 and 256 MiB: creation from the program (load and
//     run to farcall_ready()) beside creation from a snapshot of it, and the time to the first
//     response from a snapshot (pool creation + one request), once with the file's checksums
//     computed (the first load of a file in a process) and then as every later load;
//   - writing those snapshots;
//   - backends holding 1..256 MiB of state: snapshot (written and synced), restore into a new
//     backend, and restart of a backend from its snapshot.
// Snapshot files go to the OS temporary directory (this machine: see meta.tmpFilesystem).
//
//   node dist/bench/snapshot.js [--quick]
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Backend } from '../src/backend';
import { packageRoot } from '../src/native';
import { RequestPool } from '../src/pool';
import { row, usSince } from './lib';
import { BenchOptions, Figure, Section, standalone } from './report';

const guestPath = (n: string) => path.join(packageRoot(), 'build', 'guests', n);
/** Published restore-from-snapshot figures (µs, p50) the issue names. */
const PUBLISHED = { zeroboot: 790, hyperlight: 900 };
const GOAL_US = 1000;

function i64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(v));
  return b;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [v, usSince(t)];
}

function filesystemOf(dir: string): string {
  try {
    return execFileSync('df', ['--output=fstype', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '?';
  } catch {
    return '?';
  }
}

export async function run(opts: BenchOptions = {}): Promise<Section> {
  const quick = !!opts.quick;
  const log = opts.progress ?? (() => {});
  const t0 = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-bench-snap-'));
  const rows: Figure[] = [];
  const ratios: Section['ratios'] = [];
  const distributions: Record<string, number[]> = {};
  const diskUse: Record<string, number> = {};
  rows.push({ ...row('goal: first response from a snapshot', [GOAL_US], 'issue 16, 64 MiB master'), n: 0, reference: true });
  rows.push({ ...row('zeroboot spawn from snapshot', [PUBLISHED.zeroboot], 'published'), n: 0, reference: true });
  rows.push({ ...row('Hyperlight Unikraft restore', [PUBLISHED.hyperlight], 'published'), n: 0, reference: true });
  try {
    for (const mib of [1, 64, 256]) {
      const memoryMiB = 2 * Math.ceil(mib / 2) + 64; // room for the program beside its data
      const fromProgram: number[] = [];
      const firstProgram: number[] = [];
      const programReps = quick ? (mib >= 64 ? 1 : 2) : mib >= 256 ? 2 : mib >= 64 ? 3 : 5;
      const file = path.join(dir, `touch${mib}.snap`);
      const writes: number[] = [];
      let want = '';
      log(`snapshot: ${mib} MiB master from its program`);
      for (let i = 0; i < programReps; i++) {
        const [pool, us] = await timed(() => RequestPool.create(guestPath('bench_snap_touch'), { size: 1, memoryMiB, args: [String(mib)], initTimeoutMs: 60000 }));
        const [, first] = await timed(() => pool.run('echo:x'));
        fromProgram.push(us);
        firstProgram.push(us + first);
        want = (await pool.run('sum')).toString();
        if (i === programReps - 1) for (let k = 0; k < (quick ? 2 : 3); k++) writes.push((await pool.snapshot(file)).us);
        await pool.close();
      }
      diskUse[`master ${mib} MiB`] = fs.statSync(file).blocks * 512;
      // The first load of a file in a process computes its memory checksums: a fresh copy each time.
      log(`snapshot: ${mib} MiB master from its snapshot`);
      const firstLoad: number[] = [];
      for (let i = 0; i < (quick ? 2 : 3); i++) {
        const copy = path.join(dir, `copy${mib}-${i}.snap`);
        execFileSync('cp', ['--sparse=always', file, copy]);
        const [pool, us] = await timed(async () => {
          const p = await RequestPool.fromSnapshot(copy, { size: 1 });
          await p.run('echo:x');
          return p;
        });
        firstLoad.push(us);
        await pool.close();
        fs.unlinkSync(copy);
      }
      const create: number[] = [];
      const first: number[] = [];
      for (let i = 0; i < (quick ? 20 : 100); i++) {
        const t = process.hrtime.bigint();
        const pool = await RequestPool.fromSnapshot(file, { size: 1 });
        create.push(usSince(t));
        await pool.run('echo:x');
        first.push(usSince(t));
        if (i === 0 && (await pool.run('sum')).toString() !== want) throw new Error(`snapshot bench: the ${mib} MiB snapshot answers differently`);
        await pool.close();
      }
      distributions[`first response from snapshot, ${mib} MiB`] = first;
      rows.push({ ...row(`pool from program, ${mib} MiB master`, fromProgram, 'load + run to farcall_ready() + fork') });
      rows.push({ ...row(`pool from snapshot, ${mib} MiB master`, create, 'file checked already'), vs: `pool from program, ${mib} MiB master` });
      rows.push({ ...row(`first response from program, ${mib} MiB`, firstProgram, 'pool creation + 1 request') });
      rows.push({
        ...row(`first response from snapshot, ${mib} MiB`, first, 'pool creation + 1 request'),
        vs: mib === 64 ? 'goal: first response from a snapshot' : `first response from program, ${mib} MiB`,
        goal: mib === 64 ? 1 : undefined,
      });
      rows.push({ ...row(`first response, first load of the file, ${mib} MiB`, firstLoad, 'checksums computed'), vs: `first response from program, ${mib} MiB` });
      rows.push({ ...row(`write master snapshot, ${mib} MiB`, writes, 'written + fsync + rename') });
      const p50 = (n: string) => rows.find((r) => r.name === n)!.p50;
      ratios.push({ name: `pool creation, ${mib} MiB: program ÷ snapshot (p50)`, value: p50(`pool from program, ${mib} MiB master`) / p50(`pool from snapshot, ${mib} MiB master`) });
      if (mib === 64) ratios.push({ name: 'first response from a 64 MiB snapshot ÷ 1 ms goal (p50)', value: p50('first response from snapshot, 64 MiB') / GOAL_US, goal: 1 });
    }

    for (const mib of quick ? [1, 16, 64] : [1, 16, 64, 256]) {
      log(`snapshot: backend with ${mib} MiB of state`);
      const file = path.join(dir, `state${mib}.snap`);
      const memoryMiB = 2 * Math.ceil(mib / 2) + 64; // room for the program beside its data
      const be = await Backend.load(guestPath('bench_snap_state'), { memoryMiB, callTimeoutMs: 600000 });
      let want: string;
      const writes: number[] = [];
      try {
        await be.call('grow', i64(mib), { outCap: 8, timeoutMs: 600000 });
        want = (await be.call('sum', '', { outCap: 8, timeoutMs: 600000 })).toString('hex');
        for (let k = 0; k < (quick ? 2 : 5); k++) writes.push((await be.snapshot(file)).us);
      } finally {
        be.close(); // its window is free again: the restored one takes it
      }
      diskUse[`backend ${mib} MiB`] = fs.statSync(file).blocks * 512;
      const restores: number[] = [];
      const restarts: number[] = [];
      for (let i = 0; i < (quick ? 2 : 5); i++) {
        const [b, us] = await timed(() => Backend.fromSnapshot(file, { callTimeoutMs: 600000 }));
        restores.push(us);
        if ((await b.call('sum', '', { outCap: 8, timeoutMs: 600000 })).toString('hex') !== want) throw new Error(`snapshot bench: the restored ${mib} MiB backend differs`);
        if (i < 2) restarts.push((await timed(() => b.restart()))[1]);
        b.close();
      }
      rows.push({ ...row(`backend snapshot, ${mib} MiB state`, writes, 'written + fsync + rename') });
      rows.push({ ...row(`backend from snapshot, ${mib} MiB state`, restores, 'new backend, 1 instance'), vs: `backend snapshot, ${mib} MiB state` });
      rows.push({ ...row(`backend restart from snapshot, ${mib} MiB`, restarts, 'instances rewritten in place') });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    name: 'snapshot',
    title: 'Snapshots: pools and backends restored from files (issue 16)',
    rows,
    ratios,
    distributions,
    meta: { quick, tmpDir: os.tmpdir(), tmpFilesystem: filesystemOf(os.tmpdir()), diskBytes: diskUse, wallSeconds: (Date.now() - t0) / 1000 },
  };
}

if (require.main === module) standalone(run);
