#!/usr/bin/env node
// The farcall command line.
import { Command } from 'commander';

import { doctor, formatDoctor } from './doctor';
import { FarcallError } from './errors';
import { runProgram } from './run';

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

export function makeCli(): Command {
  const program = new Command('farcall').description('remote calls between KVM virtual machines').version('0.1.0').enablePositionalOptions();

  program
    .command('run')
    .description('run a static x86-64 Linux program in a fresh VM')
    .argument('<program>', 'path of the static ELF')
    .argument('[args...]', 'arguments passed to it')
    .option('-t, --timeout <ms>', 'execution timeout', '10000')
    .option('-m, --memory <MiB>', 'guest memory', '64')
    .option('-e, --env <K=V...>', 'environment variables')
    .option('--stdin', 'pass this process\'s stdin to the guest')
    .option('--json', 'print the result as JSON (exit code, output, stats)')
    .passThroughOptions()
    .action(async (prog: string, args: string[], o) => {
      try {
        const stdin = o.stdin ? require('fs').readFileSync(0) : undefined;
        const r = await runProgram(prog, { args, env: o.env ?? [], stdin, timeoutMs: Number(o.timeout), memoryMiB: Number(o.memory) });
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
    .command('doctor')
    .description('check KVM, its flavor and capabilities, and the build tools')
    .option('--json', 'machine-readable output')
    .action((o) => {
      const r = doctor();
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatDoctor(r) + '\n');
      process.exitCode = r.ok ? 0 : 1;
    });

  return program;
}

if (require.main === module) {
  makeCli().parseAsync(process.argv).catch(fail);
}
