// The file benchmark (issue 14), one run, every figure beside the same work done natively by
// the same static program (build/guests/bench_files) in the same run:
//   - read throughput of a 16 MiB file through the read-only view and from the scratch
//     directory (natively: the same file in the page cache, a file in a temporary directory);
//   - system calls per call, in each entry flavor this host runs (trap-page; pvm-native on
//     kvm_pvm): umask, which the VMM always answers (a forwarded call), getppid, which the
//     pvm-native guest kernel answers itself (docs/pvm.md), and a one-byte pread of a view file.
// The program times itself (clock_gettime around each repetition), so VM start-up is left out.
//
//   node dist/bench/files.js [--quick]
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { packageRoot } from '../src/native';
import { EntryFlavor, runProgram } from '../src/run';
import { row } from './lib';
import { BenchOptions, Figure, Section, standalone } from './report';

const program = path.join(packageRoot(), 'build', 'guests', 'bench_files');
const MIB = 16;

function times(stdout: string, what: string): number[] {
  const v = stdout.trim().split('\n').map(Number);
  if (!v.length || v.some((x) => !Number.isFinite(x))) throw new Error(`files bench: ${what} printed ${JSON.stringify(stdout.slice(0, 200))}`);
  return v;
}

function native(args: string[], what: string): number[] {
  const r = spawnSync(program, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`files bench: native ${what} failed: ${r.stderr}`);
  return times(r.stdout, `native ${what}`);
}

async function vm(args: string[], what: string, entry: EntryFlavor, files: object): Promise<number[]> {
  const r = await runProgram(program, { args, entry, files, memoryMiB: 64, timeoutMs: 600000 });
  if (r.exitCode !== 0) throw new Error(`files bench: ${what} (${entry}) exited ${r.exitCode}: ${r.stderr.toString()}`);
  return times(r.stdout.toString(), `${what} (${entry})`);
}

/** The flavors this host runs: trap-page always; pvm-native where its VM can be made. */
async function flavors(): Promise<EntryFlavor[]> {
  const out: EntryFlavor[] = ['trap-page'];
  try {
    await runProgram(program, { args: ['getppid', '1', '1'], entry: 'pvm-native' });
    out.push('pvm-native');
  } catch {
    // not kvm_pvm, or its self-check failed
  }
  return out;
}

const perCall = (v: number[], n: number) => v.map((x) => x / n);
const mibps = (us: number) => `${((MIB * 1e6) / us).toFixed(0)} MiB/s at p50`;

export async function run(opts: BenchOptions = {}): Promise<Section> {
  const quick = !!opts.quick;
  const log = opts.progress ?? (() => {});
  const t0 = Date.now();
  const reps = quick ? 5 : 30;
  const calls = quick ? 2000 : 10000;
  const callReps = quick ? 20 : 100;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-bench-files-'));
  const view = path.join(dir, 'view');
  fs.mkdirSync(view);
  fs.writeFileSync(path.join(view, 'data'), Buffer.alloc(MIB << 20, 'v'));
  const rows: Figure[] = [];
  const ratios: Section['ratios'] = [];
  const distributions: Record<string, number[]> = {};
  const entries = await flavors();
  try {
    log('files: native reads');
    const nView = native(['read', path.join(view, 'data'), String(reps)], 'view read');
    const nScratch = native(['make', path.join(dir, 'scratch-data'), String(MIB), String(reps)], 'temporary file read');
    rows.push({ ...row(`native: read ${MIB} MiB file`, nView, mibps(percentileOf(nView))) });
    rows.push({ ...row(`native: read ${MIB} MiB file in a temp dir`, nScratch, mibps(percentileOf(nScratch))) });
    const nCall = perCall(native(['getppid', String(calls), String(callReps)], 'getppid'), calls);
    const nUmask = perCall(native(['umask', String(calls), String(callReps)], 'umask'), calls);
    const nPread = perCall(native(['pread1', path.join(view, 'data'), String(calls), String(callReps)], 'pread'), calls);
    rows.push({ ...row('native: getppid', nCall, 'per call') });
    rows.push({ ...row('native: umask', nUmask, 'per call') });
    rows.push({ ...row('native: pread 1 byte', nPread, 'per call') });
    for (const entry of entries) {
      log(`files: ${entry}`);
      const vView = await vm(['read', '/data', String(reps)], 'view read', entry, { readOnly: view });
      const vScratch = await vm(['make', '/tmp/data', String(MIB), String(reps)], 'scratch read', entry, { scratch: { path: '/tmp', maxMiB: MIB + 1 } });
      // A forwarded call costs an exit on trap-page: fewer of them keep the run short.
      const n = entry === 'trap-page' ? Math.ceil(calls / 10) : calls;
      const vCall = perCall(await vm(['getppid', String(n), String(callReps)], 'getppid', entry, {}), n);
      const vUmask = perCall(await vm(['umask', String(n), String(callReps)], 'umask', entry, {}), n);
      const vPread = perCall(await vm(['pread1', '/data', String(n), String(callReps)], 'pread', entry, { readOnly: view }), n);
      const add = (name: string, v: number[], vs: string, note: string) => {
        rows.push({ ...row(name, v, note), vs });
        distributions[name] = v;
      };
      add(`${entry}: read ${MIB} MiB, read-only view`, vView, `native: read ${MIB} MiB file`, mibps(percentileOf(vView)));
      add(`${entry}: read ${MIB} MiB, scratch dir`, vScratch, `native: read ${MIB} MiB file in a temp dir`, mibps(percentileOf(vScratch)));
      add(`${entry}: umask (forwarded to the VMM)`, vUmask, 'native: umask', 'per call');
      add(`${entry}: getppid`, vCall, 'native: getppid', entry === 'pvm-native' ? 'per call, answered in the guest kernel' : 'per call, forwarded');
      add(`${entry}: pread 1 byte, view`, vPread, 'native: pread 1 byte', 'per call');
      ratios.push({ name: `${entry}: view read / native`, value: percentileOf(vView) / percentileOf(nView) });
      ratios.push({ name: `${entry}: scratch read / native`, value: percentileOf(vScratch) / percentileOf(nScratch) });
      ratios.push({ name: `${entry}: umask (forwarded) / native`, value: percentileOf(vUmask) / percentileOf(nUmask) });
      ratios.push({ name: `${entry}: getppid / native`, value: percentileOf(vCall) / percentileOf(nCall) });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    name: 'files',
    title: `Files: ${MIB} MiB reads through the read-only view and the scratch directory, forwarded system calls per entry flavor (issue 14)`,
    rows,
    ratios,
    distributions,
    meta: { quick, mib: MIB, reps, calls, callReps, entries, wallSeconds: (Date.now() - t0) / 1000 },
  };
}

function percentileOf(v: number[]): number {
  return row('', v).p50;
}

if (require.main === module) standalone(run);
