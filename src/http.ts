// The HTTP front of a broker (used by `farcall serve` and the demo), on fastify:
//   POST /pools/:pool               body = request bytes  -> the response bytes
//   POST /backends/:backend/:entry  body = input bytes    -> the entry's output (host call);
//                                   only entries the config exposes ("backend.entry")
//   GET  /stats                                          -> broker.stats() as JSON
//   GET  /healthz                                        -> "ok" (no token needed)
// Every failure answers JSON {code, message[, details]}. Work is refused before its body is
// read when it cannot be taken (no token, unknown target, full queue), so a flood of large
// bodies costs the server at most (forks + queue places) bodies per pool.
import * as crypto from 'crypto';
import * as net from 'net';
import Fastify, { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { Broker } from './broker';
import { HttpConfig, MIN_TOKEN_LENGTH } from './config';
import { ConfigError, FarcallError, InvalidArgumentError } from './errors';
import { DEFAULT_MAX_QUEUE } from './pool';

export interface HttpOptions extends HttpConfig {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1; anything beyond loopback requires `token`. */
  host?: string;
}

export interface HttpFront {
  server: import('http').Server;
  url: string;
  close(): Promise<void>;
}

/** Status for each error code: who failed (the caller 4xx, the guest 502, overload 503, time 504). */
const STATUS: Record<string, number> = {
  InvalidArgument: 400, Timeout: 504, GuestFault: 502, MemoryLimit: 502, OutputLimit: 502, Protocol: 502,
  RequestFailed: 422, BackendFault: 502, BackendUnavailable: 503, Closed: 503, Overloaded: 503,
};
/** Seconds a client should wait after a 503 before trying again. */
const RETRY_AFTER_S = 1;
const DEFAULT_BODY_LIMIT = 1 << 20;
const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'] as const;

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.replace(/^\[|\]$/g, '').replace(/^::ffff:/i, '');
  if (net.isIPv4(h)) return h.startsWith('127.');
  return net.isIPv6(h) && /^(0{0,4}:){7}0{0,3}1$|^::1$/.test(h);
}

function checkToken(token?: string): void {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH)
    throw new InvalidArgumentError('InvalidArgument', `the bearer token must be at least ${MIN_TOKEN_LENGTH} characters`);
}

// Compares digests, so neither the content nor the length of the token leaks through timing.
function tokenCheck(token: string): (presented: string) => boolean {
  const want = crypto.createHash('sha256').update(token).digest();
  return (presented) => crypto.timingSafeEqual(crypto.createHash('sha256').update(presented).digest(), want);
}

function reply(res: FastifyReply, status: number, code: string, message: string, details?: unknown): FastifyReply {
  if (status === 503) res.header('retry-after', String(RETRY_AFTER_S));
  const body: Record<string, unknown> = { code, message };
  if (details && Object.keys(details).length) body.details = details;
  return res.code(status).type('application/json').send(JSON.stringify(body));
}

// Per target (pool or backend): requests taken and not yet answered, bodies being read included.
class Admission {
  private readonly taken = new Map<string, number>();
  take(key: string, limit: number, res: FastifyReply): boolean {
    const n = this.taken.get(key) ?? 0;
    if (n >= limit) return false;
    this.taken.set(key, n + 1);
    res.raw.once('close', () => this.taken.set(key, (this.taken.get(key) ?? 1) - 1));
    return true;
  }
}

/** Builds the fastify app for `broker` (not listening). Checks the options against the broker. */
export function httpApp(broker: Broker, opts: HttpOptions = {}): FastifyInstance {
  const bodyLimit = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1) throw new InvalidArgumentError('InvalidArgument', `bodyLimitBytes must be a positive whole number, got ${bodyLimit}`);
  checkToken(opts.token);
  const tokenOk = opts.token === undefined ? undefined : tokenCheck(opts.token);
  const exposed = new Set<string>();
  for (const e of opts.expose ?? []) {
    const dot = e.indexOf('.');
    const [b, entry] = [e.slice(0, dot), e.slice(dot + 1)];
    let backend;
    try {
      backend = broker.backend(b);
    } catch {
      throw new ConfigError('InvalidArgument', `config http.expose: ${JSON.stringify(e)} names no backend (backends: ${Object.keys(broker.stats().backends).join(', ') || 'none'})`);
    }
    if (dot < 1 || !backend.entries.includes(entry))
      throw new ConfigError('InvalidArgument', `config http.expose: backend ${b} has no entry ${JSON.stringify(entry)} (entries: ${backend.entries.join(', ')})`);
    exposed.add(`${b}.${entry}`);
  }
  const admission = new Admission();
  const backendLimit = new Map<string, number>();

  const app = Fastify({
    bodyLimit,
    requestTimeout: opts.requestTimeoutMs ?? 30000, // receiving a request (headers and body) takes at most this
    keepAliveTimeout: 5000,
    return503OnClosing: true,
    frameworkErrors: (err, _req, res) => void reply(res, 400, 'BadRequest', err.message),
  });
  // Every body is raw bytes for the guest, whatever its content-type says.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setNotFoundHandler((req, res) => reply(res, 404, 'NotFound', `no route ${req.method} ${req.url.split('?')[0]}`));
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number; details?: unknown }, _req, res) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply(res, 413, 'BodyTooLarge', `request body over ${bodyLimit} bytes`);
    if (err instanceof FarcallError) return reply(res, STATUS[err.code] ?? 500, err.code, err.message, err.details);
    if (err.statusCode && err.statusCode < 500) return reply(res, err.statusCode, 'BadRequest', err.message);
    return reply(res, 500, 'Internal', err.message);
  });

  // Runs before the body is read: authentication, method, then whether the work can be taken.
  app.addHook('onRequest', async (req: FastifyRequest, res: FastifyReply) => {
    const cfg = req.routeOptions.config as { open?: boolean; allow?: string; target?: 'pool' | 'backend' };
    if (tokenOk && !cfg.open) {
      const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
      if (!m || !tokenOk(m[1])) {
        res.header('www-authenticate', m ? 'Bearer realm="farcall", error="invalid_token"' : 'Bearer realm="farcall"');
        return reply(res, 401, 'Unauthorized', m ? 'the bearer token is not valid' : 'a bearer token is required (Authorization: Bearer <token>)');
      }
    }
    if (cfg.allow && !cfg.allow.split(', ').includes(req.method)) {
      res.header('allow', cfg.allow);
      return reply(res, 405, 'MethodNotAllowed', `${req.method} is not allowed here (allowed: ${cfg.allow})`);
    }
    const params = req.params as Record<string, string>;
    if (cfg.target === 'pool') {
      let pool;
      try {
        pool = broker.pool(params.pool);
      } catch {
        return reply(res, 404, 'NotFound', `no request pool named ${params.pool}`);
      }
      if (pool.full || !admission.take(`pool:${params.pool}`, pool.capacity, res))
        return reply(res, 503, 'Overloaded', `request pool ${params.pool} is full`);
    } else if (cfg.target === 'backend') {
      const key = `${params.backend}.${params.entry}`;
      // Unexposed entries look like missing ones: the front does not tell what exists behind it.
      if (!exposed.has(key)) return reply(res, 404, 'NotFound', `no exposed backend entry ${key}`);
      let limit = backendLimit.get(params.backend);
      if (limit === undefined) {
        limit = broker.backend(params.backend).stats().instances.length + DEFAULT_MAX_QUEUE;
        backendLimit.set(params.backend, limit);
      }
      if (!admission.take(`backend:${params.backend}`, limit, res))
        return reply(res, 503, 'Overloaded', `backend ${params.backend} has ${limit} calls waiting already`);
    }
  });

  // Each path answers 405 with Allow for the methods it does not serve (checked in onRequest).
  const route = (method: 'GET' | 'POST', url: string, config: Record<string, unknown>, handler: (req: FastifyRequest) => Promise<unknown>) => {
    const allow = method === 'GET' ? 'GET, HEAD' : method;
    app.route({ method, url, config: { ...config, allow }, handler });
    app.route({ method: METHODS.filter((m) => !allow.includes(m)), url, config: { ...config, allow }, handler: async () => undefined });
  };
  route('POST', '/pools/:pool', { target: 'pool' }, async (req) => {
    const { pool } = req.params as { pool: string };
    return broker.request(pool, (req.body as Buffer | undefined) ?? Buffer.alloc(0));
  });
  route('POST', '/backends/:backend/:entry', { target: 'backend' }, async (req) => {
    const { backend, entry } = req.params as { backend: string; entry: string };
    return broker.backend(backend).call(entry, (req.body as Buffer | undefined) ?? Buffer.alloc(0));
  });
  route('GET', '/stats', {}, async () => broker.stats());
  route('GET', '/healthz', { open: true }, async () => 'ok\n');
  return app;
}

/** Throws unless `host` is loopback or a (long enough) token is set: beyond loopback, every pool would be open to the network. */
export function checkListen(host: string, token?: string): void {
  checkToken(token);
  if (!isLoopback(host) && !token)
    throw new InvalidArgumentError(
      'InvalidArgument',
      `refusing to listen on ${host} without a bearer token: anyone who reaches it could run requests. ` +
        'Give a token (farcall serve --token, FARCALL_HTTP_TOKEN, or http.token in the config) or listen on 127.0.0.1',
    );
}

/**
 * Serves `broker` over HTTP. Loopback (127.0.0.1) by default; listening anywhere else without a
 * bearer token is refused, since every pool (and every exposed entry) would be open to the network.
 */
export async function serveHttp(broker: Broker, opts: HttpOptions = {}): Promise<HttpFront> {
  const host = opts.host ?? '127.0.0.1';
  checkListen(host, opts.token);
  const app = httpApp(broker, opts);
  await app.listen({ port: opts.port ?? 0, host });
  const addr = app.server.address() as net.AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { server: app.server, url: `http://${shown}:${addr.port}`, close: () => app.close() };
}
