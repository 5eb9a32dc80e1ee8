#!/usr/bin/env node
// Sets up whatever a fresh machine lacks, then builds: Debian packages (installed when run as
// root, otherwise the exact command is printed), npm packages, the native addon and guest
// programs (cmake-js), and the TypeScript (tsc). Cheap when everything is already there.
//   node scripts/setup.js [--quiet] [--build]
'use strict';
const { execSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const quiet = process.argv.includes('--quiet');
const log = (m) => { if (!quiet) console.log(`[setup] ${m}`); };

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const run = (cmd, opts = {}) => execSync(cmd, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });

// Tool -> Debian package that provides it.
const needs = [
  ['gcc', 'build-essential'], ['g++', 'g++'], ['make', 'make'], ['cmake', 'cmake'], ['ninja', 'ninja-build'],
  ['musl-gcc', 'musl-tools'], ['flatc', 'flatbuffers-compiler'],
  ['redis-server', 'redis-server'],
];
const headers = [['/usr/include/flatbuffers/flatbuffers.h', 'libflatbuffers-dev'], ['/usr/include/linux/kvm.h', 'linux-libc-dev']];
const missing = new Set();
for (const [cmd, pkg] of needs) if (!has(cmd)) missing.add(pkg);
for (const [file, pkg] of headers) if (!fs.existsSync(file)) missing.add(pkg);
if (missing.size) {
  const pkgs = [...missing].join(' ');
  if (process.getuid && process.getuid() === 0) {
    log(`installing Debian packages: ${pkgs}`);
    run('apt-get update -qq', { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    run(`apt-get install -y -qq ${pkgs}`, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    console.error(`[setup] missing tools; run:\n  sudo apt-get install -y ${pkgs}`);
    process.exit(1);
  }
}

if (!fs.existsSync(path.join(root, 'node_modules', 'cmake-js')) || !fs.existsSync(path.join(root, 'node_modules', 'typescript'))) {
  log('installing npm packages');
  run('npm install --no-audit --no-fund');
}

// Native addon + guest programs: cmake-js is incremental (ninja), so always run it.
log('building native addon and guest programs');
run('npx cmake-js compile --out build' + (quiet ? ' --log-level error' : ''));
log('compiling TypeScript');
run('npx tsc -p tsconfig.json');
log('ready');
