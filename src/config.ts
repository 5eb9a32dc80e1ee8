// Broker configuration: what to load, with which limits, and which pool may call which
// backend. Read from code, JSON or TOML; every bad field is a ConfigError naming its path.
import * as fs from 'fs';
import * as path from 'path';

import { RestartPolicy } from './backend';
import { ConfigError } from './errors';

export interface BackendConfig {
  /** Path of the backend program (built with farcall_add_program(... BACKEND)). */
  program: string;
  instances?: number;
  memoryMiB?: number;
  callTimeoutMs?: number;
  initTimeoutMs?: number;
  args?: string[];
  env?: Record<string, string>;
  /** Network destinations ("host:port", numeric IPv4) the backend may connect to; nothing else. */
  network?: { allow: string[] };
  restart?: RestartPolicy;
  /** In-guest calls on PVM hosts; the backend can take over its callers' VMs (BackendOptions.trusted). */
  trusted?: boolean;
}

export interface PoolConfig {
  /** Path of the request program (calls farcall_ready()). */
  program: string;
  size?: number;
  timeoutMs?: number;
  initTimeoutMs?: number;
  memoryMiB?: number;
  maxDirtyMiB?: number;
  maxQueue?: number;
  /** Names of the backends this pool's program may call. */
  backends?: string[];
  args?: string[];
  env?: Record<string, string>;
}

export interface BrokerConfig {
  backends?: Record<string, BackendConfig>;
  pools?: Record<string, PoolConfig>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function fail(where: string, msg: string): never {
  throw new ConfigError('InvalidArgument', `config ${where}: ${msg}`);
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'must be an object');
  return v as Record<string, unknown>;
}

function known(o: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${where}.${k}`, `unknown field (expected one of: ${keys.join(', ')})`);
}

function int(o: Record<string, unknown>, k: string, where: string, min: number, max: number, even = false): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max || (even && v % 2))
    fail(`${where}.${k}`, `must be ${even ? 'an even' : 'a'} whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function strList(o: Record<string, unknown>, k: string, where: string): string[] | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(`${where}.${k}`, 'must be a list of strings');
  return v as string[];
}

function strMap(o: Record<string, unknown>, k: string, where: string): Record<string, string> | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  const m = obj(v, `${where}.${k}`);
  for (const [kk, vv] of Object.entries(m)) if (typeof vv !== 'string') fail(`${where}.${k}.${kk}`, 'must be a string');
  return m as Record<string, string>;
}

function program(o: Record<string, unknown>, where: string, baseDir: string): string {
  const p = o.program;
  if (typeof p !== 'string' || !p) fail(`${where}.program`, 'must be the path of a program');
  const abs = path.resolve(baseDir, p);
  if (!fs.existsSync(abs)) fail(`${where}.program`, `no such file: ${abs}`);
  return abs;
}

function endpoint(s: string, where: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(s);
  if (!m || m.slice(1, 5).some((x) => Number(x) > 255) || Number(m[5]) < 1 || Number(m[5]) > 65535)
    fail(where, `${JSON.stringify(s)} is not a numeric IPv4 "a.b.c.d:port"`);
  return s;
}

/** Checks a configuration object and resolves program paths against `baseDir`. */
export function validateConfig(raw: unknown, baseDir = process.cwd()): BrokerConfig {
  const top = obj(raw, '(top)');
  known(top, ['backends', 'pools'], 'config');
  const out: BrokerConfig = { backends: {}, pools: {} };
  for (const [name, v] of Object.entries(top.backends === undefined ? {} : obj(top.backends, 'backends'))) {
    const w = `backends.${name}`;
    if (!NAME.test(name)) fail(w, 'backend names are identifiers (letters, digits, _)');
    const b = obj(v, w);
    known(b, ['program', 'instances', 'memoryMiB', 'callTimeoutMs', 'initTimeoutMs', 'args', 'env', 'network', 'restart', 'trusted'], w);
    let network: BackendConfig['network'];
    if (b.network !== undefined) {
      const n = obj(b.network, `${w}.network`);
      known(n, ['allow'], `${w}.network`);
      network = { allow: (strList(n, 'allow', `${w}.network`) ?? []).map((s, i) => endpoint(s, `${w}.network.allow[${i}]`)) };
    }
    let restart: RestartPolicy | undefined;
    if (b.restart !== undefined) {
      const r = obj(b.restart, `${w}.restart`);
      known(r, ['maxFaults', 'windowMs', 'backoffMs', 'maxBackoffMs'], `${w}.restart`);
      restart = {
        maxFaults: int(r, 'maxFaults', `${w}.restart`, 1, 1e6),
        windowMs: int(r, 'windowMs', `${w}.restart`, 1, 1e9),
        backoffMs: int(r, 'backoffMs', `${w}.restart`, 0, 1e9),
        maxBackoffMs: int(r, 'maxBackoffMs', `${w}.restart`, 0, 1e9),
      };
      for (const k of Object.keys(restart) as Array<keyof RestartPolicy>) if (restart[k] === undefined) delete restart[k];
    }
    out.backends![name] = {
      program: program(b, w, baseDir),
      instances: int(b, 'instances', w, 1, 64),
      memoryMiB: int(b, 'memoryMiB', w, 4, 16384, true),
      callTimeoutMs: int(b, 'callTimeoutMs', w, 1, 3600000),
      initTimeoutMs: int(b, 'initTimeoutMs', w, 1, 3600000),
      args: strList(b, 'args', w),
      env: strMap(b, 'env', w),
      network,
      restart,
    };
    if (b.trusted !== undefined) {
      if (typeof b.trusted !== 'boolean') fail(`${w}.trusted`, 'must be true or false');
      out.backends![name].trusted = b.trusted;
    }
  }
  for (const [name, v] of Object.entries(top.pools === undefined ? {} : obj(top.pools, 'pools'))) {
    const w = `pools.${name}`;
    if (!NAME.test(name)) fail(w, 'pool names are identifiers (letters, digits, _)');
    const p = obj(v, w);
    known(p, ['program', 'size', 'timeoutMs', 'initTimeoutMs', 'memoryMiB', 'maxDirtyMiB', 'maxQueue', 'backends', 'args', 'env'], w);
    const backends = strList(p, 'backends', w) ?? [];
    backends.forEach((b, i) => {
      if (!out.backends![b]) fail(`${w}.backends[${i}]`, `no backend named ${JSON.stringify(b)} in this config`);
    });
    out.pools![name] = {
      program: program(p, w, baseDir),
      size: int(p, 'size', w, 1, 256),
      timeoutMs: int(p, 'timeoutMs', w, 1, 3600000),
      initTimeoutMs: int(p, 'initTimeoutMs', w, 1, 3600000),
      memoryMiB: int(p, 'memoryMiB', w, 4, 65536, true),
      maxDirtyMiB: int(p, 'maxDirtyMiB', w, 1, 65536),
      maxQueue: int(p, 'maxQueue', w, 0, 1e9),
      backends,
      args: strList(p, 'args', w),
      env: strMap(p, 'env', w),
    };
  }
  return out;
}

/** Reads a .json or .toml configuration file; relative program paths are relative to it. */
export function loadConfigFile(file: string): BrokerConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('InvalidArgument', `cannot read config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    if (file.endsWith('.toml')) raw = require('smol-toml').parse(text);
    else raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('InvalidArgument', `config ${file} is not valid ${file.endsWith('.toml') ? 'TOML' : 'JSON'}: ${(e as Error).message}`);
  }
  return validateConfig(raw, path.dirname(path.resolve(file)));
}
