// The HTTP front of a broker (used by `farcall serve` and the http sample):
//   POST /pools/:pool               body = request bytes  -> the response bytes
//   POST /backends/:backend/:entry  body = input bytes    -> the entry's output (host call)
//   GET  /stats                                          -> broker.stats() as JSON
//   GET  /healthz                                        -> "ok"
// Failures answer with a JSON body {code, message} and a status that says who failed.
import * as http from 'http';
import { AddressInfo } from 'net';

import { Broker } from './broker';
import { FarcallError } from './errors';

const STATUS: Record<string, number> = {
  InvalidArgument: 400, Timeout: 504, GuestFault: 502, MemoryLimit: 502, OutputLimit: 502, Protocol: 502,
  RequestFailed: 422, BackendFault: 502, BackendUnavailable: 503, Closed: 503,
};

export interface HttpFront {
  server: http.Server;
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(new FarcallError('InvalidArgument', `request body over ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function handler(broker: Broker): http.RequestListener {
  return async (req, res) => {
    const send = (status: number, body: Buffer | string, type = 'application/octet-stream') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (req.method === 'GET' && url.pathname === '/healthz') return send(200, 'ok\n', 'text/plain');
      if (req.method === 'GET' && url.pathname === '/stats') return send(200, JSON.stringify(broker.stats()), 'application/json');
      if (req.method === 'POST' && parts[0] === 'pools' && parts.length === 2) {
        return send(200, await broker.request(parts[1], await readBody(req)));
      }
      if (req.method === 'POST' && parts[0] === 'backends' && parts.length === 3) {
        return send(200, await broker.backend(parts[1]).call(parts[2], await readBody(req)));
      }
      send(404, JSON.stringify({ code: 'NotFound', message: `no route ${req.method} ${url.pathname}` }), 'application/json');
    } catch (e) {
      const err = e as FarcallError;
      const code = err.code ?? 'Internal';
      send(STATUS[code] ?? 500, JSON.stringify({ code, message: err.message, details: err.details }), 'application/json');
    }
  };
}

/** Serves `broker` over HTTP on host:port (port 0: any free port). Loopback by default. */
export async function serveHttp(broker: Broker, port = 0, host = '127.0.0.1'): Promise<HttpFront> {
  const server = http.createServer(handler(broker));
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
