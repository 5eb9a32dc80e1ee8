// Every benchmark of the project in one process, one report: foundation (exits, system calls, VM
// creation), forks (reset, request cycle, fork creation), gate (far calls beside traps and IPC),
// scale (many forks, bursts, resets across maxDirtyMiB, callers per backend instance), http (the
// http sample against node:http + Map under autocannon), snapshot (pools and backends from
// files), files (reads through the read-only view and the scratch directory, a forwarded system
// call per entry flavor, each against native),
// threads (thread creation and a futex ping-pong against native),
// and bench/stubs.ts when it exists. Prints ONE table — each figure with its baseline from the same
// run (or a published reference) and the ratio — writes bench-results/<section>.json,
// bench-results/summary.json and bench-results/latency.svg (call-latency distributions beside
// the alternatives), and states the KVM flavor.
//
//   node dist/bench/run.js [--quick] [--only foundation,forks,gate,stubs]
//
// A section module exports `async function run(opts: BenchOptions): Promise<Section>` (bench/report.ts).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EMULATED_NOTE, hostInfo, HostInfo } from './lib';
import { latencySvg, Panel } from './plot';
import { BenchOptions, Section, formatCombined, resultsDir, writeSection } from './report';

export interface RunAllOptions extends Omit<BenchOptions, 'progress'> {
  /** Progress lines: a function, or true for stderr. Default none. */
  progress?: BenchOptions['progress'] | boolean;
  /** Sections to run (default: all). */
  only?: string[];
  /** Folder for the results, relative to the working directory. Default bench-results. */
  dir?: string;
  /** Where the report text goes (default: process.stdout). Pass null to print nothing. */
  out?: ((text: string) => void) | null;
}

export interface RunAllResult {
  host: HostInfo;
  date: string;
  /** Every section's figures (raw samples left out: they are in the plot). */
  sections: Section[];
  /** Sections that were skipped, with why. */
  skipped: Array<{ name: string; reason: string }>;
  /** The header and the combined table, as printed. */
  text: string;
  files: string[];
  wallSeconds: number;
}

type Loader = () => Promise<{ run?: (o: BenchOptions) => Promise<Section> } | null>;

const SECTIONS: Array<{ name: string; load: Loader }> = [
  { name: 'foundation', load: async () => import('./foundation') },
  { name: 'forks', load: async () => import('./forks') },
  { name: 'gate', load: async () => import('./gate') },
  { name: 'scale', load: async () => import('./scale') },
  { name: 'http', load: async () => import('./http') },
  { name: 'snapshot', load: async () => import('./snapshot') },
  { name: 'files', load: async () => import('./files') },
  { name: 'threads', load: async () => import('./threads') },
  {
    name: 'stubs',
    // Another part of the project; optional. Skipped when bench/stubs.ts is absent.
    load: async () => {
      const file = path.join(__dirname, 'stubs.js');
      if (!fs.existsSync(file)) return null;
      const m = await import(file);
      const run = m.run ?? m.runStubs ?? m.bench ?? m.default;
      return typeof run === 'function' ? { run } : { run: undefined };
    },
  },
];

function flavorLine(h: HostInfo): string {
  const what =
    h.kvmFlavor === 'pvm' ? 'kvm_pvm (PVM: shadow paging, guest at hardware CPL 3, ring-0 guest code emulated)'
      : h.kvmFlavor === 'hardware' ? 'hardware KVM (VT-x / AMD-V)' : h.kvmFlavor;
  return `KVM flavor: ${what}; entry mode: ${h.entryMode}${h.emulated ? `\n${EMULATED_NOTE}` : ''}`;
}

/** Tolerates a section written against lib.ts's Row shape only (no vs/ratios/meta). */
function normalize(name: string, s: Partial<Section> & { rows?: Section['rows'] }): Section {
  if (!s || !Array.isArray(s.rows)) throw new Error(`bench section ${name}: run() did not return { rows: [...] }`);
  return { name: s.name ?? name, title: s.title ?? name, rows: s.rows, ratios: s.ratios ?? [], distributions: s.distributions, meta: s.meta ?? {} };
}

function plot(sections: Section[], host: HostInfo, date: string): Panel[] {
  const gate = sections.find((s) => s.name === 'gate');
  if (!gate?.distributions) return [];
  const d = gate.distributions;
  const pick = (names: string[]) => names.filter((n) => d[n]).map((n) => ({ name: n, us: d[n] }));
  const quietNames = Object.keys(d).filter((n) => !n.endsWith('[busy]'));
  const busyNames = Object.keys(d).filter((n) => n.endsWith('[busy]'));
  void host;
  void date;
  return [
    { title: 'Call round trips, quiet: gate calls, ring-3 trap, host call, IPC between two processes', series: pick(quietNames) },
    { title: 'The same with both cores kept busy by two spinning processes', series: pick(busyNames) },
  ];
}

export async function runAll(opts: RunAllOptions = {}): Promise<RunAllResult> {
  const t0 = Date.now();
  const out = opts.out === undefined ? (t: string) => process.stdout.write(t) : opts.out;
  const progress =
    typeof opts.progress === 'function' ? opts.progress : opts.progress ? (l: string) => process.stderr.write(`[bench] ${l}\n`) : () => {};
  const host = hostInfo();
  const date = new Date().toISOString();
  const load0 = os.loadavg();
  const sections: Section[] = [];
  const skipped: RunAllResult['skipped'] = [];
  for (const def of SECTIONS) {
    if (opts.only && !opts.only.includes(def.name)) continue;
    const started = Date.now();
    progress(`bench ${def.name}…`);
    const mod = await def.load();
    if (!mod) {
      skipped.push({ name: def.name, reason: `bench/${def.name}.ts is not there` });
      continue;
    }
    if (!mod.run) {
      skipped.push({ name: def.name, reason: `bench/${def.name}.ts exports no run(opts) function` });
      continue;
    }
    const s = normalize(def.name, await mod.run({ quick: opts.quick, progress }));
    s.meta.sectionSeconds = (Date.now() - started) / 1000;
    sections.push(s);
    progress(`bench ${def.name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  const load1 = os.loadavg();
  const wallSeconds = (Date.now() - t0) / 1000;

  const files = sections.map((s) => writeSection(s, sections, host, date, opts.dir));
  const panels = plot(sections, host, date);
  if (panels.length) {
    const svg = path.join(resultsDir(opts.dir), 'latency.svg');
    fs.writeFileSync(svg, latencySvg('farcall: call-latency distributions beside the alternatives', panels,
      `${date} · ${host.cpu}, ${host.cores} cores · KVM flavor: ${host.kvmFlavor}${host.emulated ? ' · EMULATED, not performance' : ''} · one run`));
    files.push(svg);
  }
  const header = [
    `farcall benchmarks — ${date}${opts.quick ? ' (quick)' : ''}`,
    flavorLine(host),
    `host: ${host.cpu}, ${host.cores} cores, Linux ${host.kernel}, node ${host.node}`,
    `load average (1 min) at start ${load0[0].toFixed(2)}, at end ${load1[0].toFixed(2)}; whole run ${wallSeconds.toFixed(0)} s`,
    'µs per operation; "baseline" is a figure of this same run (or a published one, n = pub); ratio = figure ÷ baseline.',
  ];
  for (const s of skipped) header.push(`skipped ${s.name}: ${s.reason}`);
  const text = header.join('\n') + '\n\n' + formatCombined(sections) + '\n';
  const summary = path.join(resultsDir(opts.dir), 'summary.json');
  fs.writeFileSync(summary, JSON.stringify({ date, host, quick: !!opts.quick, loadAverage: { start: load0, end: load1 }, wallSeconds, skipped, table: text }, null, 2) + '\n');
  files.push(summary);
  if (out) out(text + '\nwrote ' + files.map((f) => path.relative(process.cwd(), f) || f).join(', ') + '\n');
  const slim = sections.map(({ distributions: _d, ...rest }) => rest);
  return { host, date, sections: slim, skipped, text, files, wallSeconds };
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const onlyAt = argv.indexOf('--only');
  runAll({
    quick: argv.includes('--quick') || process.env.FARCALL_BENCH_QUICK === '1',
    only: onlyAt >= 0 ? argv[onlyAt + 1]?.split(',') : undefined,
    progress: (l) => process.stderr.write(`[bench] ${l}\n`),
  }).catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
