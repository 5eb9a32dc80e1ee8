// `farcall demo` (npm start): the kv-store sample behind the HTTP front. Every HTTP request
// runs in a fresh fork that calls the persistent kv backend; prints a short latency table.
import * as http from 'http';

import { serveHttp } from '../../src/http';
import { percentile } from '../../src/stats';

interface Demo {
  broker: import('../../src/broker').Broker;
  request(command: string): Promise<string>;
  close(): Promise<void>;
}

function post(agent: http.Agent, url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function runDemo(opts: { requests?: number; concurrency?: number; progress?: boolean } = {}): Promise<string> {
  const n = opts.requests ?? 2000;
  const conc = opts.concurrency ?? 8;
  const kv = require('.') as { startKvDemo(): Promise<Demo> };
  const out: string[] = [];
  const t0 = performance.now();
  const demo = await kv.startKvDemo();
  const startMs = performance.now() - t0;
  const front = await serveHttp(demo.broker);
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  const url = `${front.url}/pools/kv`;
  try {
    out.push(`farcall demo: kv backend + request pool behind ${front.url} (started in ${startMs.toFixed(0)} ms)`);
    out.push(`  PUT greeting hello -> ${(await post(agent, url, 'PUT greeting hello')).body.trim()}`);
    out.push(`  GET greeting       -> ${(await post(agent, url, 'GET greeting')).body.trim()}   (another fork, same backend)`);
    const lat: number[] = [];
    let errors = 0;
    let next = 0;
    let shown = -1;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        const cmd = i % 3 === 0 ? `PUT k${i % 100} v${i}` : i % 3 === 1 ? `GET k${i % 100}` : `INCR hits`;
        const s = performance.now();
        const r = await post(agent, url, cmd);
        lat.push((performance.now() - s) * 1000);
        if (r.status !== 200) errors++;
        const pct = Math.floor((lat.length * 100) / n);
        if (opts.progress && pct !== shown && pct % 5 === 0) {
          shown = pct;
          process.stderr.write(`\r  ${lat.length}/${n} requests`);
        }
      }
    };
    const w0 = performance.now();
    await Promise.all(Array.from({ length: conc }, worker));
    const wall = (performance.now() - w0) / 1000;
    if (opts.progress) process.stderr.write('\r\x1b[K');
    lat.sort((a, b) => a - b);
    const st = demo.broker.stats();
    const pool = st.pools.kv;
    const fmt = (v: number) => `${v.toFixed(0).padStart(7)} µs`;
    out.push(`  INCR hits x${Math.floor(n / 3)} across forks -> ${(await post(agent, url, 'GET hits')).body.trim()}`);
    out.push('');
    out.push(`  ${n} HTTP requests, ${conc} at a time, ${(n / wall).toFixed(0)} req/s, ${errors} errors`);
    out.push('  what                                     p50          p99');
    out.push(`  HTTP round trip (fresh fork each)  ${fmt(percentile(lat, 50))}  ${fmt(percentile(lat, 99))}`);
    out.push(`  request in a fork (queue+run+reset) ${fmt(pool.latency.p50Us)}  ${fmt(pool.latency.p99Us)}`);
    out.push(`  fork reset (${pool.resets.fast} fast, ${pool.resets.full} full)       ${fmt(pool.reset.p50Us)}  ${fmt(pool.reset.p99Us)}`);
    out.push(`  backend calls: ${st.backends.kv.calls}, faults: ${st.backends.kv.faults}`);
    return out.join('\n');
  } finally {
    agent.destroy();
    await front.close();
    await demo.close();
  }
}
