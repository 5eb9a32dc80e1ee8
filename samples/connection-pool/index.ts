// connection-pool sample: a backend with N instances, each holding one persistent TCP
// connection to a real Redis server on loopback; per-request guests run commands through it.
// The broker lets the backend reach only the address its config's network.allow lists.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as net from 'net';
import * as path from 'path';

import { Broker, BrokerConfig, loadConfigFile } from '../../src';
import { repoRoot } from '../kv-store';
import { RespClient } from './resp';

export { RespClient } from './resp';

export function configPath(): string {
  return path.join(repoRoot(), 'samples', 'connection-pool', 'farcall.json');
}

export const REDIS_POOL = 'redis';
export const REDIS_BACKEND = 'redis';

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  port: number;
  addr: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL if it lingers). */
  stop(): Promise<void>;
}

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Starts `redis-server` on a free loopback port, without persistence; killed at process exit. */
export async function startRedis(): Promise<RedisServer> {
  if (!redisAvailable()) throw new Error('redis-server is not installed (Debian: apt-get install redis-server)');
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const killAtExit = () => child.kill('SIGKILL');
  process.on('exit', killAtExit);
  let exited = false;
  const gone = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  // Wait until it answers PING (at most 5 s).
  const deadline = Date.now() + 5000;
  for (;;) {
    if (exited) throw new Error(`redis-server exited at start (port ${port})`);
    try {
      const c = await RespClient.connect(port);
      const pong = await c.command('PING');
      c.close();
      if (pong === 'PONG') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 5 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    addr: `127.0.0.1:${port}`,
    process: child,
    stop: async () => {
      process.off('exit', killAtExit);
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** farcall.json with the backend pointed at (and allowed to reach) `addr`. */
export function configFor(addr: string, opts: { instances?: number; poolSize?: number; allow?: string[] } = {}): BrokerConfig {
  const config = loadConfigFile(configPath());
  const b = config.backends![REDIS_BACKEND];
  b.env = { ...(b.env ?? {}), REDIS_ADDR: addr };
  b.network = { allow: opts.allow ?? [addr] };
  if (opts.instances !== undefined) b.instances = opts.instances;
  if (opts.poolSize !== undefined) config.pools![REDIS_POOL].size = opts.poolSize;
  return config;
}

export interface PoolDemo {
  broker: Broker;
  redis: RedisServer;
  /** Runs Redis commands (one a line) in a fresh fork; one reply line per command. */
  request(commands: string): Promise<string>;
  close(): Promise<void>;
}

/** Starts redis-server and a broker whose backend pools connections to it. */
export async function startPoolDemo(opts: { instances?: number; poolSize?: number } = {}): Promise<PoolDemo> {
  const redis = await startRedis();
  let broker: Broker;
  try {
    broker = await Broker.start(configFor(redis.addr, opts));
  } catch (e) {
    await redis.stop();
    throw e;
  }
  return {
    broker,
    redis,
    request: async (commands) => (await broker.request(REDIS_POOL, commands)).toString(),
    close: async () => {
      await broker.close();
      await redis.stop();
    },
  };
}
