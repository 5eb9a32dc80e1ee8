// The foundation benchmark (issue 2): what one VM exit costs on this host, what a guest system
// call handled by the VMM costs beside it, how long a whole hello-world VM takes, and a unix-socket
// round trip between two processes as the IPC baseline. One run, ratios within the run.
//
//   node dist/bench/foundation.js            (after `node scripts/setup.js`)
//   FARCALL_BENCH_QUICK=1 node dist/bench/foundation.js   (fewer iterations)
// bench/run.ts calls run() instead, with the other benchmarks, and prints one combined table.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

import { native, packageRoot } from '../src/native';
import { runProgram } from '../src/run';
import { mean, report, Row, row, usSince } from './lib';
import { BenchOptions, Section } from './report';

let quick = process.env.FARCALL_BENCH_QUICK === '1';
let TRAPS = quick ? 1000 : 10000;
const CHUNKS = 10;
let VMS = quick ? 10 : 30;
let PINGS = quick ? 500 : 2000;
const guest = (n: string) => path.join(packageRoot(), 'build', 'guests', n);

async function baseline(kind: Parameters<ReturnType<typeof native>['baseline']>[0], n: number): Promise<number[]> {
  const ns = await native().baseline(kind, n);
  return Array.from(ns, (v) => v / 1000);
}

/** Per-call cost of getppid through runProgram: (time of N calls − time of 0 calls) / N, repeated. */
async function syscallThroughProcess(calls: number, reps: number): Promise<number[]> {
  const prog = fs.readFileSync(guest('syscall_loop'));
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const empty = await runProgram(prog, { args: ['0'] });
    const full = await runProgram(prog, { args: [String(calls)] });
    if (full.stats.syscalls[110] !== calls) throw new Error(`syscall_loop made ${full.stats.syscalls[110]} getppid calls, expected ${calls}`);
    out.push((full.stats.timeUs - empty.stats.timeUs) / calls);
  }
  return out;
}

/** Wall time of the whole runProgram promise (read file, create VM, load, run, destroy). */
async function vmCreateRun(name: string, n: number): Promise<number[]> {
  const file = guest(name);
  await runProgram(file); // warm-up: addon load, watchdog thread, page cache
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await runProgram(file);
    out.push(usSince(t0));
    if (r.exitCode !== 7) throw new Error(`${name} exited ${r.exitCode}`);
  }
  return out;
}

const ECHO_SERVER = `
const net = require('net');
const srv = net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); });
srv.listen(process.argv[1], () => process.stdout.write('ready\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** Ping-pong of one byte with an echo server in another process, over a unix socket. */
async function unixSocketRoundTrip(n: number): Promise<number[]> {
  const sock = path.join(os.tmpdir(), `farcall-bench-${process.pid}.sock`);
  fs.rmSync(sock, { force: true });
  const child = spawn(process.execPath, ['-e', ECHO_SERVER, sock], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => reject(new Error(`echo server exited ${c}`)));
      child.stdout!.once('data', () => resolve());
    });
    const c = net.createConnection(sock);
    c.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    });
    const one = Buffer.from([42]);
    const ping = () =>
      new Promise<number>((resolve) => {
        const t0 = process.hrtime.bigint();
        c.once('data', () => resolve(usSince(t0)));
        c.write(one);
      });
    for (let i = 0; i < 100; i++) await ping();
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(await ping());
    c.destroy();
    return out;
  } finally {
    child.removeAllListeners('exit');
    child.stdin!.end();
    child.kill();
    fs.rmSync(sock, { force: true });
  }
}

async function measure(): Promise<{ rows: Row[]; ratios: Record<string, number>; meta: Record<string, unknown> }> {
  const t0 = Date.now();
  const rows: Row[] = [];
  // The round-trip kinds are interleaved in chunks so that drift of the host hits them alike.
  const kinds = ['exit-out', 'trap-mmio', 'trap-fetch', 'syscall'] as const;
  const samples = new Map<string, number[]>(kinds.map((k) => [k, []]));
  const perCall: number[] = [];
  for (let chunk = 0; chunk < CHUNKS; chunk++) {
    for (const k of kinds) samples.get(k)!.push(...(await baseline(k, TRAPS / CHUNKS)));
    perCall.push(...(await syscallThroughProcess(quick ? 1000 : 2000, 1)));
  }
  rows.push(row('exit-out', samples.get('exit-out')!, 'ring-0 out, KVM_EXIT_IO'));
  rows.push(row('trap-mmio', samples.get('trap-mmio')!, 'ring-3 write to unbacked GPA, KVM_EXIT_MMIO'));
  rows.push(row('trap-fetch', samples.get('trap-fetch')!, 'ring-3 jump to unbacked page'));
  rows.push(row('syscall', samples.get('syscall')!, 'ring-3 syscall through Vm::run'));
  rows.push(row('syscall-process', perCall, 'getppid via runProgram, per-call mean of each run'));
  rows.push(row('vm-create', await baseline('vm-create', VMS), 'bare VM + vCPU + first exit'));
  rows.push(row('run hello_musl', await vmCreateRun('hello_musl', VMS), 'whole runProgram'));
  rows.push(row('run hello_glibc', await vmCreateRun('hello_glibc', VMS), 'whole runProgram'));
  rows.push(row('unix-socket', await unixSocketRoundTrip(PINGS), 'node ↔ node ping-pong'));

  const p50 = (name: string) => rows.find((r) => r.name === name)!.p50;
  const ratios = {
    'syscall ÷ trap-mmio (p50, goal ≤ 1.2)': p50('syscall') / p50('trap-mmio'),
    'syscall-process ÷ trap-mmio (p50)': p50('syscall-process') / p50('trap-mmio'),
    'trap-mmio ÷ exit-out (p50)': p50('trap-mmio') / p50('exit-out'),
  };
  const meta = {
    iterations: { traps: TRAPS, vms: VMS, pings: PINGS },
    quick,
    syscallGoalMet: ratios['syscall ÷ trap-mmio (p50, goal ≤ 1.2)'] <= 1.2,
    wallSeconds: (Date.now() - t0) / 1000,
    meanSyscallProcessUs: mean(perCall),
  };
  return { rows, ratios, meta };
}

/** The foundation figures as a section of the combined report (bench/run.ts). */
export async function run(opts: BenchOptions = {}): Promise<Section> {
  if (opts.quick !== undefined) {
    quick = opts.quick;
    TRAPS = quick ? 1000 : 10000;
    VMS = quick ? 10 : 30;
    PINGS = quick ? 500 : 2000;
  }
  const { rows, ratios, meta } = await measure();
  const vs: Record<string, { vs: string; goal?: number }> = {
    'exit-out': { vs: 'trap-mmio' },
    'trap-fetch': { vs: 'trap-mmio' },
    syscall: { vs: 'trap-mmio', goal: 1.2 },
    'syscall-process': { vs: 'trap-mmio' },
    'run hello_musl': { vs: 'vm-create' },
    'run hello_glibc': { vs: 'vm-create' },
    'unix-socket': { vs: 'trap-mmio' },
  };
  return {
    name: 'foundation',
    title: 'VM exits, system calls, VM creation (issue 2)',
    rows: rows.map((r) => ({ ...r, ...vs[r.name] })),
    ratios: [
      { name: 'syscall ÷ trap-mmio (p50)', value: ratios['syscall ÷ trap-mmio (p50, goal ≤ 1.2)'], goal: 1.2 },
      { name: 'trap-mmio ÷ exit-out (p50)', value: ratios['trap-mmio ÷ exit-out (p50)'] },
    ],
    meta,
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const { rows, ratios, meta } = await measure();
  report('foundation', rows, { baseline: 'trap-mmio', ratios, ...meta });
  process.stdout.write(`total ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
