// Shared by the benchmarks: statistics, an aligned table with ratios to a named baseline row,
// and a JSON record of every run (bench-results/<name>.json in the working directory) with the host and KVM flavor.
// Absolute times drift on these machines; compare rows of one run, as ratios.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { doctor } from '../src/doctor';
import { percentile as nearestRank } from '../src/stats';

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** The p-th percentile (0..100) of values: the library's nearest rank (src/stats.ts) on a sorted copy. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const a = Array.from(values).sort((x, y) => x - y);
  return a.length ? nearestRank(a, p) : NaN;
}

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return values.length ? s / values.length : NaN;
}

export function summarize(values: ArrayLike<number>): Summary {
  const a = Array.from(values);
  return {
    n: a.length,
    p50: percentile(a, 50),
    p99: percentile(a, 99),
    mean: mean(a),
    min: a.length ? Math.min(...a) : NaN,
    max: a.length ? Math.max(...a) : NaN,
  };
}

/** One line of a report. Times are in microseconds. */
export interface Row extends Summary {
  name: string;
  note?: string;
}

export function row(name: string, microseconds: ArrayLike<number>, note?: string): Row {
  return { name, ...summarize(microseconds), note };
}

export interface ReportMeta {
  /** The row whose p50 the ratio column divides by. */
  baseline: string;
  /** Named ratios to print under the table and record, e.g. { 'syscall / trap-mmio': 1.1 }. */
  ratios?: Record<string, number>;
  [k: string]: unknown;
}

export interface HostInfo {
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  kvmFlavor: string;
  entryMode: string;
  /** Inside scripts/hwkvm-lane.sh: the CPU (and so every figure) is emulated by QEMU TCG. */
  emulated: boolean;
}

/** Said beside every emulated figure: the lane shows that things work, not how fast. */
export const EMULATED_NOTE = 'EMULATED (QEMU TCG, scripts/hwkvm-lane.sh): functional evidence, not performance';

export function hostInfo(): HostInfo {
  let flavor = 'unknown';
  let entryMode = 'none';
  try {
    const d = doctor();
    flavor = d.flavor;
    entryMode = d.entryMode;
  } catch {
    // no addon or no KVM: the report still says what ran
  }
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    kernel: os.release(),
    node: process.version,
    kvmFlavor: flavor,
    entryMode,
    emulated: process.env.FARCALL_HWKVM_LANE === '1',
  };
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (v >= 1000) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** The table as text (also used by the docs). */
export function formatTable(rows: Row[], baseline: string): string {
  const base = rows.find((r) => r.name === baseline);
  const head = ['operation', 'n', 'p50 µs', 'p99 µs', 'mean µs', `÷ ${baseline}`];
  const body = rows.map((r) => [
    r.name + (r.note ? ` (${r.note})` : ''),
    String(r.n),
    fmt(r.p50),
    fmt(r.p99),
    fmt(r.mean),
    base ? (r.p50 / base.p50).toFixed(2) : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** Where results go: `dir` under the working directory (never the package's own tracked files). */
export function resultsDir(dir = 'bench-results'): string {
  const abs = path.resolve(dir);
  fs.mkdirSync(abs, { recursive: true });
  return abs;
}

/** Prints the table with ratios to meta.baseline and writes bench-results/<name>.json. Returns the file. */
export function report(name: string, rows: Row[], meta: ReportMeta): string {
  const host = hostInfo();
  const date = new Date().toISOString();
  const lines = [
    `${name} — ${date}`,
    `host: ${host.cpu}, ${host.cores} cores, Linux ${host.kernel}, node ${host.node}; KVM flavor: ${host.kvmFlavor}, entry mode: ${host.entryMode}`,
    ...(host.emulated ? [EMULATED_NOTE] : []),
    '',
    formatTable(rows, meta.baseline),
  ];
  for (const [k, v] of Object.entries(meta.ratios ?? {})) lines.push(`${k}: ${v.toFixed(2)}`);
  process.stdout.write(lines.join('\n') + '\n');
  const file = path.join(resultsDir(), `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ name, date, host, meta, rows }, null, 2) + '\n');
  process.stdout.write(`wrote ${path.relative(process.cwd(), file) || file}\n`);
  return file;
}

/** Microseconds elapsed since a process.hrtime.bigint() start. */
export function usSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1000;
}
