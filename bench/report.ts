// The shape every benchmark section returns to bench/run.ts, and the one table that run.ts prints:
// each figure beside its own baseline (a row of the same run, a multiple of one, or a published
// reference measured elsewhere) and the ratio between them, with the goal where the issue sets one.
import * as fs from 'fs';
import * as path from 'path';

import { EMULATED_NOTE, HostInfo, hostInfo, resultsDir, Row } from './lib';

export { resultsDir } from './lib';

/** One line of the combined report. */
export interface Figure extends Row {
  /** The name of the row this one is compared with: in the same section first, else any section of the run. */
  vs?: string;
  /** The baseline is vsFactor × that row (e.g. 2 × the ring-3 trap). Default 1. */
  vsFactor?: number;
  /** Which statistic the ratio compares. Default p50. */
  on?: 'p50' | 'p99';
  /** The ratio this figure should stay at or below. */
  goal?: number;
  /** A published figure, not measured here: only p50 is meaningful. */
  reference?: boolean;
}

export interface Section {
  /** bench-results/<name>.json */
  name: string;
  title: string;
  rows: Figure[];
  /** Named ratios that the issue asks for, with their goals. */
  ratios: Array<{ name: string; value: number; goal?: number }>;
  /** Raw samples (µs) of the latency distributions to plot, by series name. */
  distributions?: Record<string, number[]>;
  meta: Record<string, unknown>;
}

export interface BenchOptions {
  /** Fewer iterations (a smoke run). */
  quick?: boolean;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

/** Rows whose name matches, across sections (the first wins). */
export function findRow(sections: Section[], name: string): Figure | undefined {
  for (const s of sections) {
    const r = s.rows.find((x) => x.name === name);
    if (r) return r;
  }
  return undefined;
}

export function fmtUs(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (v >= 1000) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

export interface Resolved {
  section: string;
  row: Figure;
  baseName?: string;
  baseValue?: number;
  ratio?: number;
  met?: boolean;
}

/** Works out every figure's baseline value and ratio. */
export function resolve(sections: Section[]): Resolved[] {
  const out: Resolved[] = [];
  for (const s of sections) {
    for (const r of s.rows) {
      const res: Resolved = { section: s.name, row: r };
      if (r.vs) {
        const base = s.rows.find((x) => x.name === r.vs) ?? findRow(sections, r.vs);
        const on = r.on ?? 'p50';
        if (base) {
          const f = r.vsFactor ?? 1;
          // A published reference has only a p50; compare p99 with it only when asked to.
          const bv = (base.reference ? base.p50 : base[on]) * f;
          res.baseName = `${f !== 1 ? `${f} × ` : ''}${r.vs}${on === 'p99' ? ' (p99)' : ''}`;
          res.baseValue = bv;
          res.ratio = r[on] / bv;
          if (r.goal !== undefined) res.met = res.ratio <= r.goal;
        }
      }
      out.push(res);
    }
  }
  return out;
}

/** The combined table, as plain text. */
export function formatCombined(sections: Section[]): string {
  const resolved = resolve(sections);
  const head = ['section', 'figure', 'n', 'p50 µs', 'p99 µs', 'baseline', 'base µs', 'ratio', 'goal'];
  const body: string[][] = [];
  let last = '';
  for (const x of resolved) {
    const r = x.row;
    body.push([
      x.section === last ? '' : x.section,
      r.name + (r.note ? ` — ${r.note}` : ''),
      r.reference ? 'pub' : String(r.n),
      fmtUs(r.p50),
      r.reference ? '-' : fmtUs(r.p99),
      x.baseName ?? '',
      x.baseValue !== undefined ? fmtUs(x.baseValue) : '',
      x.ratio !== undefined ? x.ratio.toFixed(2) + (r.on === 'p99' ? ' (p99)' : '') : '',
      r.goal !== undefined ? `≤ ${r.goal} ${x.met ? 'met' : 'MISSED'}` : '',
    ]);
    last = x.section;
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const numeric = new Set([2, 3, 4, 6, 7]);
  const line = (cells: string[]) =>
    cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const lines = [line(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  last = '';
  body.forEach((b, i) => {
    if (i > 0 && resolved[i].section !== resolved[i - 1].section) lines.push('');
    lines.push(line(b));
  });
  const ratios: string[] = [];
  for (const s of sections)
    for (const q of s.ratios)
      ratios.push(`${s.name}: ${q.name} = ${q.value.toFixed(2)}${q.goal !== undefined ? ` (goal ≤ ${q.goal}: ${q.value <= q.goal ? 'met' : 'MISSED'})` : ''}`);
  return lines.join('\n') + (ratios.length ? '\n\n' + ratios.join('\n') : '');
}

/** Writes <dir>/<section>.json (rows with their resolved baselines; raw samples left out). */
export function writeSection(s: Section, all: Section[], host: HostInfo, date: string, dir?: string): string {
  const resolved = resolve(all).filter((r) => r.section === s.name);
  const file = path.join(resultsDir(dir), `${s.name}.json`);
  const rows = resolved.map((x) => ({ ...x.row, baseline: x.baseName, baselineUs: x.baseValue, ratio: x.ratio, goalMet: x.met }));
  fs.writeFileSync(file, JSON.stringify({ name: s.name, title: s.title, date, host, ratios: s.ratios, meta: s.meta, rows }, null, 2) + '\n');
  return file;
}

/** `node dist/bench/<section>.js [--quick]`: runs one section alone, prints its table, writes its JSON. */
export function standalone(run: (o: BenchOptions) => Promise<Section>): void {
  (async () => {
    const s = await run({ quick: process.argv.includes('--quick'), progress: (l) => process.stderr.write(l + '\n') });
    const host = hostInfo();
    const note = host.emulated ? `\n${EMULATED_NOTE}` : '';
    process.stdout.write(`KVM flavor: ${host.kvmFlavor}, entry mode: ${host.entryMode}${note}\n\n${formatCombined([s])}\n`);
    process.stdout.write(`wrote ${writeSection(s, [s], host, new Date().toISOString())}\n`);
  })().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
