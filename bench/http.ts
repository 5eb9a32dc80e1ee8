// Per-request cost over HTTP (issue 17): the http sample (a node:http server running every
// request in a fresh fork of the kv-store request program, which calls the kv backend) against a
// plain node:http server keeping a Map, same routes and request mix, in the same run. Load from
// autocannon in a child process (its CPU is not the server's); server CPU = this process's CPU
// (JS, the addon's executor threads and the VMs) over the run, ÷ requests answered.
//
//   node dist/bench/http.js [--quick]
import { spawn } from 'child_process';
import * as http from 'http';
import { AddressInfo } from 'net';

import { startHttpSample } from '../samples/http/server';
import { row } from './lib';
import { BenchOptions, Figure, Section, standalone } from './report';

interface Load {
  reqPerSec: number;
  total: number;
  errors: number;
  non2xx: number;
  cpuUsPerReq: number;
  p50Ms: number;
  p99Ms: number;
}

/** A node:http + Map server with the sample's kv routes (GET, PUT, POST incr). */
function mapServer(): http.Server {
  const m = new Map<string, Buffer>();
  return http.createServer((req, res) => {
    const send = (status: number, body: Buffer | string) => {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'kv' || parts.length < 2) return send(404, 'no route\n');
    const key = decodeURIComponent(parts[1]);
    if (parts[2] === 'incr' && req.method === 'POST') {
      const v = BigInt(m.get(key)?.toString() ?? '0') + BigInt(url.searchParams.get('by') ?? '1');
      m.set(key, Buffer.from(String(v)));
      return send(200, String(v));
    }
    if (req.method === 'GET') {
      const v = m.get(key);
      return v ? send(200, v) : send(404, 'not found\n');
    }
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        m.set(key, Buffer.concat(chunks));
        send(200, 'OK');
      });
      return;
    }
    send(404, 'no route\n');
  });
}

/** autocannon against `url` in a child process; the server's CPU over the same interval. */
function load(url: string, seconds: number): Promise<Load> {
  const cli = require.resolve('autocannon/autocannon.js');
  const body = 'x'.repeat(100);
  // One request kind per run keeps the CLI simple: the mix is PUT then GET of the same key.
  return new Promise((resolve, reject) => {
    const args = [cli, '--json', '-c', '8', '-d', String(seconds), '-m', 'PUT', '-b', body, `${url}/kv/load:v`];
    const c0 = process.cpuUsage();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const c = process.cpuUsage(c0);
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`));
      const r = JSON.parse(out);
      resolve({
        reqPerSec: r.requests.average,
        total: r.requests.total,
        errors: r.errors + r.timeouts,
        non2xx: r.non2xx,
        cpuUsPerReq: (c.user + c.system) / Math.max(1, r.requests.total),
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
      });
    });
  });
}

async function listen(s: http.Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

export async function run(opts: BenchOptions = {}): Promise<Section> {
  const log = opts.progress ?? (() => {});
  const seconds = opts.quick ? 2 : 5;
  const rows: Figure[] = [];
  log('http: node:http + Map');
  const plainServer = mapServer();
  let plain: Load;
  try {
    const url = await listen(plainServer);
    await load(url, 1); // warm-up
    plain = await load(url, seconds);
  } finally {
    plainServer.closeAllConnections();
    plainServer.close();
  }
  // The http sample under the same load, after a warm-up.
  const sample = async (opts: { trustedBackend?: boolean }): Promise<Load> => {
    const server = await startHttpSample(opts);
    try {
      await load(server.url, 1);
      return await load(server.url, seconds);
    } finally {
      await server.close();
    }
  };
  log('http: the http sample, a fresh fork per request');
  const forked = await sample({});
  log('http: the same, kv backend trusted with durability instance (the in-guest gate on pvm-native)');
  const trusted = await sample({ trustedBackend: true });
  const fig = (name: string, l: Load, note: string) => ({ ...row(name, [l.cpuUsPerReq], `${Math.round(l.reqPerSec)} req/s, latency p50 ${l.p50Ms} ms p99 ${l.p99Ms} ms, ${l.errors} errors, ${l.non2xx} non-2xx; ${note}`) });
  rows.push(fig('node:http + Map, server CPU per request', plain, 'PUT of 100 B, 8 connections'));
  rows.push({ ...fig('http sample (fresh fork per request), server CPU per request', forked, 'same load'), vs: 'node:http + Map, server CPU per request', goal: 2 });
  rows.push({
    ...fig('http sample, trusted kv backend, server CPU per request', trusted, 'same load; durability instance'),
    vs: 'node:http + Map, server CPU per request',
    goal: 2,
  });
  return {
    name: 'http',
    title: 'Per-request cost over HTTP (issue 17)',
    rows,
    ratios: [
      { name: 'http sample ÷ node:http + Map, throughput (goal ≥ 0.8)', value: forked.reqPerSec / plain.reqPerSec },
      // The table's goals are upper bounds: ≥ 0.8 of the throughput is ≤ 1.25 the other way round.
      { name: 'node:http + Map ÷ http sample, throughput', value: plain.reqPerSec / forked.reqPerSec, goal: 1.25 },
      { name: 'http sample ÷ node:http + Map, server CPU per request', value: forked.cpuUsPerReq / plain.cpuUsPerReq, goal: 2 },
      { name: 'http sample with a trusted backend ÷ node:http + Map, throughput', value: trusted.reqPerSec / plain.reqPerSec },
      { name: 'http sample with a trusted backend ÷ node:http + Map, server CPU per request', value: trusted.cpuUsPerReq / plain.cpuUsPerReq, goal: 2 },
    ],
    meta: { seconds, connections: 8, plain, forked, trusted },
  };
}

if (require.main === module) standalone(run);
