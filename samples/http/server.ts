// http sample: a node:http server where every HTTP request runs in a fresh fork of the
// kv-store request program (per-request isolation) and reads/writes the kv backend.
//
//   GET    /kv/:key             200 value | 404
//   PUT    /kv/:key  (body)     200 OK              (the body is the value)
//   DELETE /kv/:key             200 DELETED | 404
//   POST   /kv/:key/incr?by=N   200 new value | 409 not an integer
//   GET    /seen                200 1: how many requests the fork that ran this one has seen
//                               (always 1: each request starts from the frozen master)
//   GET    /stats               broker.stats() and this server's counters, as JSON
//   GET    /healthz             ok
import * as http from 'http';
import { AddressInfo } from 'net';

import { Broker, FarcallError } from '../../src';
import { KV_POOL, KvDemo, startKvDemo } from '../kv-store';

export interface HttpSampleCounters {
  requests: number;
  byStatus: Record<number, number>;
  /** Successful POST /kv/:key/incr requests (to check that no update was lost). */
  incrOk: number;
  /** /seen answers other than 1: a fork that kept state from a previous request. */
  isolationViolations: number;
}

export interface HttpSample {
  url: string;
  server: http.Server;
  broker: Broker;
  demo: KvDemo;
  counters: HttpSampleCounters;
  close(): Promise<void>;
}

// Below the request arena (1 MiB), which also holds the "PUT key " prefix.
const MAX_BODY = (1 << 20) - 4096;

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    if ((n += c.length) > MAX_BODY) throw Object.assign(new Error(`body over ${MAX_BODY} bytes`), { code: 'InvalidArgument' });
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** The request handler over a running kv demo (usable with any node:http server). */
export function kvHttpHandler(demo: KvDemo, counters: HttpSampleCounters): http.RequestListener {
  const run = (cmd: Buffer | string) => demo.broker.request(KV_POOL, cmd);
  return async (req, res) => {
    counters.requests++;
    const send = (status: number, body: Buffer | string, type = 'text/plain') => {
      counters.byStatus[status] = (counters.byStatus[status] ?? 0) + 1;
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const parts = url.pathname.split('/').filter(Boolean);
      if (req.method === 'GET' && url.pathname === '/healthz') return send(200, 'ok\n');
      if (req.method === 'GET' && url.pathname === '/stats')
        return send(200, JSON.stringify({ broker: demo.broker.stats(), http: counters }), 'application/json');
      if (req.method === 'GET' && url.pathname === '/seen') {
        const r = (await run('SEEN')).toString();
        if (r !== 'INT 1') {
          counters.isolationViolations++;
          return send(500, `isolation violated: ${r}\n`);
        }
        return send(200, '1');
      }
      if (parts[0] === 'kv' && (parts.length === 2 || parts.length === 3)) {
        const key = decodeURIComponent(parts[1]);
        if (!key || /\s/.test(key) || Buffer.byteLength(key) > 250) return send(400, 'keys are 1..250 bytes without spaces\n');
        if (parts.length === 3) {
          if (parts[2] !== 'incr' || req.method !== 'POST') return send(404, 'not found\n');
          const by = url.searchParams.get('by') ?? '1';
          if (!/^-?\d{1,18}$/.test(by)) return send(400, 'by must be an integer\n');
          const r = (await run(`INCR ${key} ${by}`)).toString();
          if (r.startsWith('INT ')) {
            counters.incrOk++;
            return send(200, r.slice(4));
          }
          return send(409, `${r}\n`);
        }
        if (req.method === 'GET') {
          const r = await run(`GET ${key}`);
          if (r.subarray(0, 6).toString() === 'VALUE ') return send(200, r.subarray(6), 'application/octet-stream');
          if (r.toString() === 'NIL') return send(404, 'not found\n');
          return send(500, `${r}\n`);
        }
        if (req.method === 'PUT') {
          const body = await readBody(req);
          const r = (await run(Buffer.concat([Buffer.from(`PUT ${key} `), body]))).toString();
          return r === 'OK' ? send(200, 'OK') : send(500, `${r}\n`);
        }
        if (req.method === 'DELETE') {
          const r = (await run(`DEL ${key}`)).toString();
          return r === 'DELETED' ? send(200, 'DELETED') : send(404, 'not found\n');
        }
      }
      send(404, `no route ${req.method} ${url.pathname}\n`);
    } catch (e) {
      const err = e as FarcallError;
      const status = err.code === 'InvalidArgument' ? 413 : err.code === 'Timeout' ? 504 : err.code === 'Closed' || err.code === 'BackendUnavailable' || err.code === 'Overloaded' ? 503 : 502;
      send(status, JSON.stringify({ code: err.code ?? 'Internal', message: err.message }), 'application/json');
    }
  };
}

/** Starts the kv broker and an HTTP server over it on host:port (port 0: any free port). */
export async function startHttpSample(
  opts: { port?: number; host?: string; poolSize?: number; trustedBackend?: boolean } = {},
): Promise<HttpSample> {
  const demo = await startKvDemo({ poolSize: opts.poolSize, trustedBackend: opts.trustedBackend });
  const counters: HttpSampleCounters = { requests: 0, byStatus: {}, incrOk: 0, isolationViolations: 0 };
  const server = http.createServer(kvHttpHandler(demo, counters));
  server.keepAliveTimeout = 5000;
  const host = opts.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
  } catch (e) {
    await demo.close();
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    server,
    broker: demo.broker,
    demo,
    counters,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await demo.close();
    },
  };
}
