// What the generated stubs cost over a raw entry-point call (issue 5): the same key-value lookup
// on the same backend (samples/kv/kv_backend), once through `raw_get` (plain byte-buffer entry:
// key in, value out) and once through the generated KeyValue.Get (encode the request, verify it
// in the skeleton, build the reply, verify and decode it in the client), with 16-byte and 4 KiB
// values, from the host (TypeScript stub vs Backend.callRaw) and from guests (C++ and C clients
// vs a raw gate call, timed with the TSC inside the request). One run, ratios within the run.
//
//   node dist/bench/stubs.js            (after `node scripts/setup.js`)
//   FARCALL_BENCH_QUICK=1 node dist/bench/stubs.js
// bench/run.ts calls run() with the other benchmarks.
import * as path from 'path';

import { Backend } from '../src/backend';
import { packageRoot } from '../src/native';
import { RequestPool } from '../src/pool';
import { KeyValueClient } from '../build/generated/kv/ts/kv_farcall';
import { GetRequestT, PutRequestT } from '../build/generated/kv/ts/kv_generated';
import { report, Row, row, usSince } from './lib';
import { BenchOptions, Figure, Section } from './report';

let quick = process.env.FARCALL_BENCH_QUICK === '1';
const guest = (n: string) => path.join(packageRoot(), 'build', 'guests', n);
const SIZES = [16, 4096];

/** n rounds of every call in `fns`, interleaved (drift hits all alike); µs per call, per function. */
async function hostSamples(n: number, fns: Array<() => Promise<unknown>>): Promise<number[][]> {
  for (let i = 0; i < Math.min(50, n); i++) for (const f of fns) await f(); // warm up
  const out: number[][] = fns.map(() => []);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < fns.length; k++) {
      const t0 = process.hrtime.bigint();
      await fns[k]();
      out[k].push(usSince(t0));
    }
  return out;
}

/** Parses "tsc_per_us raw t1 t2 ... stub t1 t2 ..." into µs samples per series. */
function guestSamples(text: string): Record<string, number[]> {
  if (text.startsWith('error')) throw new Error(`guest bench failed: ${text}`);
  const words = text.trim().split(/\s+/);
  const tscPerUs = Number(words.shift());
  const series: Record<string, number[]> = {};
  let cur: number[] | undefined;
  for (const w of words) {
    if (/^[a-z]+$/.test(w)) series[w] = cur = [];
    else cur!.push(Number(w) / tscPerUs);
  }
  return series;
}

async function measure(): Promise<{ rows: Row[]; ratios: Record<string, number>; meta: Record<string, unknown>; distributions: Record<string, number[]> }> {
  const t0 = Date.now();
  const N = quick ? 300 : 3000;
  const backend = await Backend.load(guest('kv_backend'));
  const cxx = await RequestPool.create(guest('kv_client'), { backends: { kv: backend }, size: 1, timeoutMs: 120000 });
  const c = await RequestPool.create(guest('kv_client_c'), { backends: { kv: backend }, size: 1, timeoutMs: 120000 });
  const rows: Row[] = [];
  const ratios: Record<string, number> = {};
  const distributions: Record<string, number[]> = {};
  try {
    const kv = await KeyValueClient.connect(backend);
    for (const size of SIZES) {
      const label = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
      const key = `bench${size}`;
      await kv.put(new PutRequestT(key, new Array(size).fill(118)));
      const keyBytes = Buffer.from(key);
      const req = new GetRequestT(key);
      const [raw, stub, reader] = await hostSamples(N, [
        async () => {
          const r = await backend.callRaw('raw_get', keyBytes, { outCap: 65536 });
          if (r.result !== size) throw new Error(`raw_get returned ${r.result}`);
        },
        async () => {
          if ((await kv.get(req)).value.length !== size) throw new Error('short reply');
        },
        async () => {
          if ((await kv.getReader(req)).valueArray()!.length !== size) throw new Error('short reply');
        },
      ]);
      const g = guestSamples((await cxx.run(Buffer.from(`bench ${size} ${N}`))).toString());
      const gc = guestSamples((await c.run(Buffer.from(`bench ${size} ${Math.min(N, 4000)}`))).toString());
      const add = (name: string, v: number[], note: string) => {
        rows.push(row(name, v, note));
        distributions[name] = v;
      };
      add(`host raw ${label}`, raw, 'Backend.callRaw raw_get');
      add(`host stub ${label}`, stub, 'TS KeyValueClient.get, object API');
      add(`host reader stub ${label}`, reader, 'TS KeyValueClient.getReader, in place');
      add(`guest raw ${label}`, g.raw, 'C++ request program, raw gate call');
      add(`guest C++ stub ${label}`, g.stub, 'kv::KeyValueClient::Get');
      add(`guest C stub ${label}`, gc.stub, 'kv_KeyValue_Get + C builder/reader');
      add(`guest C raw ${label}`, gc.raw, 'C request program, raw gate call');
      const r = (name: string) => rows.find((x) => x.name === name)!;
      for (const [who, base] of [['host stub', 'host raw'], ['host reader stub', 'host raw'], ['guest C++ stub', 'guest raw'], ['guest C stub', 'guest C raw']]) {
        const s = r(`${who} ${label}`);
        const b = r(`${base} ${label}`);
        ratios[`${who} ÷ ${base}, ${label} (p50)`] = s.p50 / b.p50;
        ratios[`${who} ÷ ${base}, ${label} (p99)`] = s.p99 / b.p99;
        ratios[`${who} − ${base}, ${label} (p50 µs)`] = s.p50 - b.p50;
      }
    }
  } finally {
    await cxx.close();
    await c.close();
    backend.close();
  }
  return { rows, ratios, distributions, meta: { iterations: N, quick, wallSeconds: (Date.now() - t0) / 1000 } };
}

/** The stub figures as a section of the combined report (bench/run.ts). */
export async function run(opts: BenchOptions = {}): Promise<Section> {
  if (opts.quick !== undefined) quick = opts.quick;
  const { rows, ratios, meta, distributions } = await measure();
  const figures: Figure[] = rows.map((r) => {
    const m = /^(host|guest)( C)?(?: C\+\+| reader)? stub (.*)$/.exec(r.name);
    return m ? { ...r, vs: `${m[1]}${m[2] ?? ''} raw ${m[3]}` } : r;
  });
  return {
    name: 'stubs',
    title: 'Generated stubs over a raw entry-point call (issue 5)',
    rows: figures,
    ratios: Object.entries(ratios).filter(([k]) => k.includes('(p50)')).map(([name, value]) => ({ name, value })),
    distributions,
    meta,
  };
}

async function main(): Promise<void> {
  const { rows, ratios, meta } = await measure();
  report('stubs', rows, { baseline: 'guest raw 16 B', ratios, ...meta });
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
