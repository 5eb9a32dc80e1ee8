// kv-store sample: per-request guests keep persistent state in a backend.
//
// A request pool ("kv") forks a fresh VM from the frozen kvstore_request master for every
// request; the fork parses a text command and calls the kv backend's entries through the gate
// ("kv.get", "kv.put", ...). The fork is reset afterwards, so nothing of one request survives
// in it, while the table in the backend persists across requests.
import * as fs from 'fs';
import * as path from 'path';

import { Broker, BrokerConfig, loadConfigFile } from '../../src';

/** The repository root, from the TypeScript sources (ts-jest) or from dist/ (tsc output). */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && fs.existsSync(path.join(dir, 'samples')) && /"name":\s*"farcall"/.test(fs.readFileSync(pkg, 'utf8'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the farcall repository above ${__dirname}`);
    dir = up;
  }
}

/** The broker configuration of this sample (JSON; program paths relative to it). */
export function configPath(): string {
  return path.join(repoRoot(), 'samples', 'kv-store', 'farcall.json');
}

/** Names in farcall.json: the request pool and the backend. */
export const KV_POOL = 'kv';
export const KV_BACKEND = 'kv';

export interface KvDemoOptions {
  /** Forks in the request pool (default: the config's). */
  poolSize?: number;
  /**
   * Runs the kv backend trusted, with durability 'instance': on pvm-native its calls take the
   * in-guest gate (no exit per call) and nothing is committed per call. For measurements; the
   * sample's config keeps it untrusted.
   */
  trustedBackend?: boolean;
}

export interface KvDemo {
  broker: Broker;
  config: BrokerConfig;
  /** Runs one text command ("GET k", "PUT k v", "INCR k [n]", "DEL k", "COUNT", "SEEN") in a fresh fork. */
  request(command: string): Promise<string>;
  /** Runs one text command directly on the backend from the host (entry "exec"). */
  hostExec(command: string): Promise<string>;
  /** The backend's counters (entry "info"). */
  info(): Promise<{ keys: number; capacity: number; gets: number; hits: number; puts: number; dels: number; incrs: number; rejected: number }>;
  close(): Promise<void>;
}

/** Starts the kv-store broker from farcall.json (what run.ts and `farcall demo` use). */
export async function startKvDemo(opts: KvDemoOptions = {}): Promise<KvDemo> {
  const config = loadConfigFile(configPath());
  if (opts.poolSize !== undefined) config.pools![KV_POOL].size = opts.poolSize;
  if (opts.trustedBackend) Object.assign(config.backends![KV_BACKEND], { trusted: true, durability: 'instance' });
  const broker = await Broker.start(config);
  const backend = broker.backend(KV_BACKEND);
  return {
    broker,
    config,
    request: async (command) => (await broker.request(KV_POOL, command)).toString(),
    hostExec: async (command) => (await backend.call('exec', command, { outCap: (1 << 20) + 16 })).toString(),
    info: async () => JSON.parse((await backend.call('info', '', { outCap: 4096 })).toString()),
    close: () => broker.close(),
  };
}
