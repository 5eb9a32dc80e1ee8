#!/usr/bin/env node
// Standalone entry of the generator (`node main.js gen ...`), used by FarcallGen.cmake so that
// guest builds do not depend on the rest of the CLI.
import { Command } from 'commander';

import { addGenCommand } from './cli';

if (require.main === module) {
  const program = new Command('farcall');
  addGenCommand(program);
  program.parseAsync(process.argv).catch((e: Error) => {
    process.stderr.write(`farcall gen: ${e.message}\n`);
    process.exit(1);
  });
}
