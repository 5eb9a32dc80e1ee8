// Soak of the http sample: node dist/samples/http/soak.js [N] [--connections C] [--json]
// Sends N HTTP requests (default 100000) through the http sample with autocannon (keep-alive,
// C connections, loopback), and reports errors, requests/s, p50/p99, leaked VMs (the kernel's
// kvm-* worker threads of this process, one per live VM), fds before/after, and RSS at 10%,
// 50% and 100% of the run. Exits non-zero on any error, lost update, isolation violation, leak
// or growing memory.
import * as fs from 'fs';

import autocannon from 'autocannon';

import { vmStock } from '../../src';
import { startHttpSample } from './server';

export interface SoakOptions {
  requests?: number;
  connections?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface SoakReport {
  requests: number;
  connections: number;
  durationS: number;
  requestsPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  /** /seen answers other than 1 (a fork that kept state from another request). */
  isolationViolations: number;
  /** Successful increments vs the counter's final value in the backend: must be equal. */
  increments: { ok: number; stored: number };
  /** kvm-* threads: before the broker started, with it running before/after the load, after close. */
  kvmThreads: { baseline: number; before: number; after: number; afterClose: number };
  fds: { baseline: number; before: number; after: number; afterClose: number };
  rssMiB: { before: number; at10: number; at50: number; at100: number; afterClose: number };
  pool: { requests: number; errors: number; resetsFast: number; resetsFull: number; p50Us: number; p99Us: number };
  leakedVms: number;
  leakedFds: number;
  /** Why the soak failed; empty when it passed. */
  failures: string[];
}

/** The kernel's kvm-* worker threads of this process: one per live VM that has run. */
const kvmThreads = () =>
  fs.readdirSync('/proc/self/task').filter((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').startsWith('kvm-');
    } catch {
      return false; // the thread ended meanwhile
    }
  }).length;
/**
 * Live VMs (as kvm-* threads) and open fds, the retired VMs farcall keeps for reuse let go first
 * (vmStock(): kept on purpose and bounded, so not leaks).
 */
function counts(): { kvm: number; fds: number } {
  const { max } = vmStock();
  vmStock({ max: 0 });
  const c = { kvm: kvmThreads(), fds: fs.readdirSync('/proc/self/fd').length };
  vmStock({ max });
  return c;
}
function rssMiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : 0;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs autocannon against url for `amount` requests; calls onCount with each completion count. */
function load(url: string, amount: number, connections: number, onCount?: (n: number) => void): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const inst = autocannon(
      {
        url,
        connections,
        amount,
        timeout: 10,
        requests: [
          { method: 'POST', path: '/kv/soak:hits/incr' },
          { method: 'GET', path: '/kv/soak:hits' },
          { method: 'PUT', path: '/kv/soak:last', body: 'a value written by one fork, read by the next' },
          { method: 'GET', path: '/kv/soak:last' },
          { method: 'GET', path: '/seen' },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    if (onCount) inst.on('response', () => onCount(++n));
  });
}

export async function soak(opts: SoakOptions = {}): Promise<SoakReport> {
  const N = opts.requests ?? 100000;
  const C = opts.connections ?? 8;
  const log = opts.log ?? (() => {});
  const failures: string[] = [];
  // One start/stop cycle first: the process keeps a few things for good on first use (the
  // addon's /dev/kvm handle, libuv's pipes), which are not leaks of the soak.
  const prime = await startHttpSample();
  await prime.demo.request('SEEN');
  await prime.close();
  await sleep(50);
  const baseline = counts();

  const s = await startHttpSample();
  let res: autocannon.Result;
  const rss = { before: 0, at10: 0, at50: 0, at100: 0, afterClose: 0 };
  let before: { kvm: number; fds: number };
  let after: { kvm: number; fds: number };
  let stored = 0;
  let acked = 0;
  let pool: SoakReport['pool'];
  try {
    // Warm-up: forks, sockets, JIT, autocannon's own allocations; not counted.
    const warm = await load(s.url, Math.min(500, Math.max(50, N / 20)), C);
    if (warm.errors || warm.non2xx) failures.push(`warm-up: ${warm.errors} errors, ${warm.non2xx} non-2xx`);
    await s.demo.request('DEL soak:hits');
    await sleep(100);
    const incrBefore = s.counters.incrOk;
    before = counts();
    rss.before = rssMiB();
    log(`soak: ${N} requests over ${C} keep-alive connections to ${s.url} (kvm threads ${before.kvm}, fds ${before.fds}, rss ${rss.before} MiB)`);
    const marks = [0.1, 0.5, 1].map((f) => Math.max(1, Math.floor(N * f)));
    const t0 = Date.now();
    res = await load(s.url, N, C, (n) => {
      if (n === marks[0]) rss.at10 = rssMiB();
      if (n === marks[1]) rss.at50 = rssMiB();
      if (n === marks[2]) rss.at100 = rssMiB();
      if (n % Math.max(1, Math.floor(N / 10)) === 0) log(`  ${n}/${N} (${Math.round(n / ((Date.now() - t0) / 1000))} req/s, rss ${rssMiB()} MiB)`);
    });
    if (!rss.at100) rss.at100 = rssMiB();
    await sleep(200); // let the server see the clients' sockets close
    after = counts();
    const v = await s.demo.request('GET soak:hits');
    stored = v.toString().startsWith('VALUE ') ? Number(v.toString().slice(6)) : 0;
    acked = s.counters.incrOk - incrBefore;
    if (stored !== acked) failures.push(`lost updates: ${acked} successful increments, counter holds ${stored}`);
    const p = s.broker.stats().pools.kv;
    pool = { requests: p.requests, errors: p.errors, resetsFast: p.resets.fast, resetsFull: p.resets.full, p50Us: p.latency.p50Us, p99Us: p.latency.p99Us };
  } finally {
    await s.close();
  }
  await sleep(100);
  const afterClose = counts();
  rss.afterClose = rssMiB();
  const increments = { ok: acked, stored };
  const report: SoakReport = {
    requests: res.requests.total,
    connections: C,
    durationS: res.duration,
    requestsPerSec: Math.round(res.requests.total / res.duration),
    latencyMs: { p50: res.latency.p50, p99: res.latency.p99, max: res.latency.max },
    errors: res.errors,
    timeouts: res.timeouts,
    non2xx: res.non2xx,
    isolationViolations: s.counters.isolationViolations,
    increments,
    kvmThreads: { baseline: baseline.kvm, before: before.kvm, after: after.kvm, afterClose: afterClose.kvm },
    fds: { baseline: baseline.fds, before: before.fds, after: after.fds, afterClose: afterClose.fds },
    rssMiB: rss,
    pool,
    leakedVms: Math.max(0, after.kvm - before.kvm) + Math.max(0, afterClose.kvm - baseline.kvm),
    leakedFds: Math.max(0, after.fds - before.fds) + Math.max(0, afterClose.fds - baseline.fds),
    failures,
  };
  if (report.requests < N) failures.push(`only ${report.requests} of ${N} requests completed`);
  if (report.errors) failures.push(`${report.errors} connection errors (${report.timeouts} timeouts)`);
  if (report.non2xx) failures.push(`${report.non2xx} non-2xx responses`);
  if (report.isolationViolations) failures.push(`${report.isolationViolations} isolation violations`);
  if (pool.errors) failures.push(`${pool.errors} failed requests in the pool`);
  if (report.leakedVms) failures.push(`leaked VMs: kvm threads ${JSON.stringify(report.kvmThreads)}`);
  if (report.leakedFds) failures.push(`leaked fds: ${JSON.stringify(report.fds)}`);
  // Flat memory: between 10% and 100% of the run, RSS may not grow by more than 32 MiB.
  const growth = rss.at100 - rss.at10;
  if (growth > 32) failures.push(`RSS grew by ${growth.toFixed(1)} MiB between 10% and 100% of the run`);
  return report;
}

export function formatReport(r: SoakReport): string {
  const lines = [
    `requests        ${r.requests} over ${r.connections} keep-alive connections in ${r.durationS.toFixed(1)} s`,
    `throughput      ${r.requestsPerSec} requests/s`,
    `latency (HTTP)  p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`,
    `pool kv         ${r.pool.requests} fork requests, p50 ${r.pool.p50Us.toFixed(0)} us, p99 ${r.pool.p99Us.toFixed(0)} us (queueing included), resets fast/full ${r.pool.resetsFast}/${r.pool.resetsFull}`,
    `errors          ${r.errors} connection errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx, ${r.pool.errors} pool errors`,
    `isolation       ${r.isolationViolations} violations (every /seen answered 1)`,
    `consistency     ${r.increments.stored} increments stored for ${r.increments.ok} acknowledged`,
    `VMs (kvm-*)     baseline ${r.kvmThreads.baseline}, running ${r.kvmThreads.before} -> ${r.kvmThreads.after}, after close ${r.kvmThreads.afterClose}: ${r.leakedVms} leaked`,
    `fds             baseline ${r.fds.baseline}, running ${r.fds.before} -> ${r.fds.after}, after close ${r.fds.afterClose}: ${r.leakedFds} leaked`,
    `RSS (MiB)       before ${r.rssMiB.before}, at 10% ${r.rssMiB.at10}, 50% ${r.rssMiB.at50}, 100% ${r.rssMiB.at100}, after close ${r.rssMiB.afterClose}`,
    r.failures.length ? `FAILED: ${r.failures.join('; ')}` : 'PASSED: 0 errors, 0 leaked VMs/fds, flat memory',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const ci = args.indexOf('--connections');
  const connections = ci >= 0 ? Number(args[ci + 1]) : 8;
  const nArg = args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--connections');
  const requests = nArg ? Number(nArg) : 100000;
  if (!(requests > 0) || !(connections > 0)) {
    console.error('usage: node dist/samples/http/soak.js [N] [--connections C] [--json]');
    process.exit(2);
  }
  const r = await soak({ requests, connections, log: json ? undefined : (l) => console.log(l) });
  console.log(json ? JSON.stringify(r, null, 2) : formatReport(r));
  process.exit(r.failures.length ? 1 : 0);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
