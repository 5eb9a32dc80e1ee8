#!/usr/bin/env node
// The farcall command line.
import { Command, InvalidArgumentError as BadOption } from 'commander';

import { Broker } from './broker';
import { doctor, formatDoctor } from './doctor';
import { loadConfigFile } from './config';
import { FarcallError, InvalidArgumentError } from './errors';
import { addGenCommand } from './gen/cli';
import { checkListen, serveHttp } from './http';
import { runProgram } from './run';
import { formatStats } from './report';

function fail(e: unknown): never {
  if (e instanceof FarcallError) {
    process.stderr.write(`farcall: ${e.name}: ${e.message}\n`);
    if (e.stdout) process.stdout.write(e.stdout);
    if (e.stderr) process.stderr.write(e.stderr);
  } else {
    process.stderr.write(`farcall: ${(e as Error).message ?? String(e)}\n`);
  }
  process.exit(1);
}

/** Commander parser for a whole number >= min: "abc", "1.5" or "0" is refused before anything runs. */
function whole(min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new BadOption(`expected a whole number${min > 0 ? ` from ${min}` : ''}, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** The reason under fetch()'s "fetch failed": ECONNREFUSED and the like. */
function fetchCause(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  if (c?.code === 'ECONNREFUSED') return 'connection refused (is "farcall serve" running there?)';
  return c?.message ?? (e as Error).message ?? String(e);
}

export function makeCli(): Command {
  const program = new Command('farcall').description('remote calls between KVM virtual machines').version('0.1.0').enablePositionalOptions();

  program
    .command('run')
    .description('run a static x86-64 Linux program in a fresh VM')
    .argument('<program>', 'path of the static ELF')
    .argument('[args...]', 'arguments passed to it')
    .option('-t, --timeout <ms>', 'execution timeout', whole(1), 10000)
    .option('-m, --memory <MiB>', 'guest memory', whole(4), 64)
    .option('-e, --env <K=V...>', 'environment variables')
    .option('--stdin', 'pass this process\'s stdin to the guest')
    .option('--json', 'print the result as JSON (exit code, output, stats)')
    .passThroughOptions()
    .action(async (prog: string, args: string[], o) => {
      try {
        const stdin = o.stdin ? require('fs').readFileSync(0) : undefined;
        const r = await runProgram(prog, { args, env: o.env ?? [], stdin, timeoutMs: o.timeout, memoryMiB: o.memory });
        if (o.json) {
          process.stdout.write(JSON.stringify({ exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString(), stats: r.stats }, null, 2) + '\n');
        } else {
          process.stdout.write(r.stdout);
          process.stderr.write(r.stderr);
        }
        process.exitCode = r.exitCode;
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('snapshot')
    .description('run a program to farcall_ready() (or farcall_serve() with --backend) and write its snapshot; or a pool or backend of a config')
    .argument('[program]', 'path of the static ELF (not with --config)')
    .argument('[args...]', 'arguments passed to it')
    .requiredOption('-o, --output <file>', 'the snapshot file to write')
    .option('-c, --config <file>', 'take the pool or backend from this broker config (its backends load as `farcall serve` loads them)')
    .option('--pool <name>', 'with --config: the pool to snapshot')
    .option('--backend [name]', 'snapshot a backend (with --config: the one of that name)')
    .option('-m, --memory <MiB>', 'guest memory (program only)')
    .option('--instances <n>', 'backend instances (program only)', '1')
    .option('-e, --env <K=V...>', 'environment variables (program only)')
    .passThroughOptions()
    .action(async (prog: string | undefined, args: string[], o) => {
      try {
        const { makeSnapshot } = require('./snapshot-cli') as typeof import('./snapshot-cli');
        const r = await makeSnapshot({ program: prog, args, output: o.output, config: o.config, pool: o.pool, backend: o.backend, memoryMiB: o.memory === undefined ? undefined : Number(o.memory), instances: Number(o.instances), env: o.env ?? [] });
        process.stderr.write(`farcall: wrote ${r.path} (${r.what}: ${(r.bytes / 1048576).toFixed(1)} MiB, sparse; ${(r.us / 1000).toFixed(1)} ms)\n`);
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('doctor')
    .description('check KVM, its flavor and capabilities, and the build tools')
    .option('--json', 'machine-readable output')
    .action((o) => {
      const r = doctor(); // never throws: a missing addon is one of its checks
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatDoctor(r) + '\n');
      process.exitCode = r.ok ? 0 : 1;
    });

  program
    .command('serve')
    .description('start a broker from a config file and serve it over HTTP (loopback by default)')
    .argument('<config>', 'broker configuration (.json or .toml)')
    .option('-p, --port <port>', 'HTTP port (0: any free port)', '8080')
    .option('-H, --host <host>', 'address to listen on; beyond loopback a token is required', '127.0.0.1')
    .option('--token <token>', 'bearer token clients must send (visible to local users in ps: prefer FARCALL_HTTP_TOKEN)')
    .action(async (config: string, o) => {
      try {
        const port = Number(o.port);
        if (!/^\d+$/.test(o.port) || port > 65535) throw new InvalidArgumentError('InvalidArgument', `--port must be a port number (0..65535), got ${JSON.stringify(o.port)}`);
        const t0 = performance.now();
        process.stderr.write(`farcall: starting the broker from ${config} ...\n`);
        const cfg = loadConfigFile(config);
        // The token: the flag, else the environment, else the config file.
        const token = o.token ?? (process.env.FARCALL_HTTP_TOKEN || undefined) ?? cfg.http?.token;
        // Refuse a public address without a token before any VM starts.
        checkListen(o.host, token);
        const broker = await Broker.start(cfg);
        broker.on('snapshot', (e) => {
          if (!e.ok) process.stderr.write(`farcall: backend ${e.backend} snapshot to ${e.path} failed: ${e.error}\n`);
        });
        broker.on('restart', (e) => process.stderr.write(`farcall: backend ${e.backend} restart attempt ${e.attempt}: ${e.ok ? 'ok' : e.error}\n`));
        let front;
        try {
          front = await serveHttp(broker, { ...cfg.http, token, port, host: o.host });
        } catch (e) {
          await broker.close();
          throw e;
        }
        const st = broker.stats();
        process.stderr.write(
          `farcall: ready in ${Math.round(performance.now() - t0)} ms: ${Object.keys(st.backends).length} backend(s), ` +
            `${Object.keys(st.pools).length} pool(s), ${cfg.http?.expose?.length ?? 0} exposed backend entr${cfg.http?.expose?.length === 1 ? 'y' : 'ies'}, ` +
            `${token ? 'bearer token required' : 'no token (loopback only)'}\n`,
        );
        process.stdout.write(`${front.url}\n`);
        const stop = async () => {
          process.stderr.write('farcall: draining and shutting down\n');
          await front.close();
          await broker.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('stats')
    .description('show the statistics of a running broker (farcall serve)')
    .option('-u, --url <url>', 'the broker\'s HTTP front', 'http://127.0.0.1:8080')
    .option('--json', 'machine-readable output')
    .option('--token <token>', 'the bearer token of the HTTP front (default: FARCALL_HTTP_TOKEN)')
    .action(async (o) => {
      try {
        const token = o.token ?? process.env.FARCALL_HTTP_TOKEN;
        const r = await fetch(new URL('/stats', o.url), { headers: token ? { authorization: `Bearer ${token}` } : {} });
        if (r.status === 401) throw new Error('GET /stats: HTTP 401: the front wants a bearer token (--token or FARCALL_HTTP_TOKEN)');
        if (!r.ok) throw new Error(`GET /stats: HTTP ${r.status}`);
        const st = (await r.json()) as import("./broker").BrokerStats;
        process.stdout.write(o.json ? JSON.stringify(st, null, 2) + '\n' : formatStats(st) + '\n');
      } catch (e) {
        fail(new Error(`cannot read stats from ${o.url}: ${fetchCause(e)}`));
      }
    });

  program
    .command('demo')
    .description('the kv-store sample behind the HTTP front: requests in fresh forks, a latency table')
    .option('-n, --requests <n>', 'HTTP requests', whole(1), 2000)
    .option('-c, --concurrency <n>', 'requests at a time', whole(1), 8)
    .action(async (o) => {
      try {
        // The demo is a sample (samples/kv-store/demo.ts), found at run time: the library does not
        // depend on it, and the package ships no samples.
        const demo = require('path').join(__dirname, '..', 'samples', 'kv-store', 'demo.js');
        if (!require('fs').existsSync(demo))
          throw new Error('the demo runs in a clone of the farcall repository ("npm start"): the package ships no samples');
        const { runDemo } = require(demo) as { runDemo(o: { requests: number; concurrency: number; progress: boolean }): Promise<string> };
        process.stdout.write(
          (await runDemo({ requests: o.requests, concurrency: o.concurrency, progress: process.stderr.isTTY })) + '\n',
        );
      } catch (e) {
        fail(e);
      }
    });

  program
    .command('bench')
    .description('run every benchmark and print one table (writes its results to ./bench-results or --out)')
    .option('--json', 'print the results as JSON')
    .option('--quick', 'fewer iterations')
    .option('-o, --out <dir>', 'folder for the results (JSON, SVG)', 'bench-results')
    .action(async (o) => {
      try {
        let bench: { runAll: (opts: Record<string, unknown>) => Promise<unknown> };
        try {
          // Found at run time (bench/ is not part of the library, nor of the package).
          bench = require(require('path').join(__dirname, '..', 'bench', 'run'));
        } catch (e) {
          // The package ships no benchmarks: they need the guest programs of a clone's build.
          throw new Error(`the benchmarks are not built: run "npm run bench" in a clone of the farcall repository (${(e as Error).message.split('\n')[0]})`);
        }
        const r = await bench.runAll({ quick: Boolean(o.quick), progress: process.stderr.isTTY, out: o.json ? null : undefined, dir: o.out });
        if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      } catch (e) {
        fail(e);
      }
    });

  addGenCommand(program);
  return program;
}

if (require.main === module) {
  makeCli().parseAsync(process.argv).catch(fail);
}
