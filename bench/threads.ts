// Guest threads (docs/threads.md): thread creation + join, and a futex ping-pong between two
// threads, timed inside bench/guests/thread_bench.c, the same static binary run in a VM (in each
// entry flavor this host offers) and natively, in the same run. Ratios VM ÷ native, p50 and p99.
//
//   node dist/bench/threads.js [--quick]      (after `node scripts/setup.js`)
// bench/run.ts calls run() with the other benchmarks.
import { spawnSync } from 'child_process';
import * as path from 'path';

import { packageRoot } from '../src/native';
import { EntryFlavor, runProgram } from '../src/run';
import { hostInfo, report, Row, row } from './lib';
import { BenchOptions, Figure, Section } from './report';

const program = path.join(packageRoot(), 'build', 'guests', 'bench_threads');
const samples = (out: Buffer | string) => out.toString().trim().split('\n').map(Number);

function native(mode: string, n: number): number[] {
  const r = spawnSync(program, [mode, String(n)], { env: {} });
  if (r.status !== 0) throw new Error(`native ${mode} exited with ${r.status}: ${r.stderr}`);
  return samples(r.stdout);
}

async function guest(mode: string, n: number, entry?: EntryFlavor): Promise<number[]> {
  const r = await runProgram(program, { args: [mode, String(n)], entry, timeoutMs: 600000 });
  if (r.exitCode !== 0) throw new Error(`guest ${mode} exited with ${r.exitCode}`);
  return samples(r.stdout);
}

/** The flavors to measure: both on kvm_pvm, the host's default elsewhere (out-stub on hardware KVM). */
function flavors(): Array<EntryFlavor | undefined> {
  return hostInfo().kvmFlavor === 'pvm' ? ['trap-page', 'pvm-native'] : [undefined];
}

async function measure(quick: boolean): Promise<{ rows: Figure[]; distributions: Record<string, number[]>; meta: Record<string, unknown> }> {
  const t0 = Date.now();
  const n = { create: quick ? 100 : 1000, pingpong: quick ? 300 : 3000 };
  const what = { create: 'thread create+join', pingpong: 'futex ping-pong round trip' };
  const rows: Figure[] = [];
  const distributions: Record<string, number[]> = {};
  for (const mode of ['create', 'pingpong'] as const) {
    const base = `${what[mode]}, native`;
    const nat = native(mode, n[mode]);
    rows.push(row(base, nat, 'the same binary on the host'));
    distributions[base] = nat;
    for (const entry of flavors()) {
      const flavor = entry ?? hostInfo().entryMode;
      const name = `${what[mode]}, VM ${flavor}`;
      const v = await guest(mode, n[mode], entry);
      rows.push({ ...row(name, v, 'threads multiplexed on the VM vCPU'), vs: base });
      distributions[name] = v;
    }
  }
  return { rows, distributions, meta: { iterations: n, quick, wallSeconds: (Date.now() - t0) / 1000 } };
}

/** The thread figures as a section of the combined report (bench/run.ts). */
export async function run(opts: BenchOptions = {}): Promise<Section> {
  const { rows, distributions, meta } = await measure(!!opts.quick);
  const ratios = rows
    .filter((r) => r.vs)
    .flatMap((r) => {
      const b = rows.find((x) => x.name === r.vs)!;
      return (['p50', 'p99'] as const).map((on) => ({ name: `${r.name} ÷ native (${on})`, value: r[on] / b[on] }));
    });
  return { name: 'threads', title: 'Guest threads against the same program run natively', rows, ratios, distributions, meta };
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick') || process.env.FARCALL_BENCH_QUICK === '1';
  const s = await run({ quick });
  const ratios = Object.fromEntries(s.ratios.map((r) => [r.name, r.value]));
  report('threads', s.rows as Row[], { baseline: 'futex ping-pong round trip, native', ratios, ...s.meta });
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
