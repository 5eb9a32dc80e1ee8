#!/usr/bin/env node
// Sets up whatever a fresh clone lacks, then builds: Debian packages (installed when run as
// root, otherwise the exact command is printed), npm packages (npm ci, from the lockfile), the
// native addon and guest programs (cmake-js), and the TypeScript (tsc). Cheap when everything is
// already there.
//   node scripts/setup.js [--quiet] [--pack]
// --quiet: on a terminal one status line per step, counting what the build has done; without a
//   terminal nothing. A failing step prints its whole output either way.
// --pack (npm's prepack): only what the package ships: dist/ and the prebuilt addon in
//   prebuilds/linux-x64/, checked for the oldest glibc the loader promises.
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const quiet = process.argv.includes('--quiet');
const pack = process.argv.includes('--pack');
const tty = Boolean(process.stderr.isTTY);
const log = (m) => { if (!quiet) console.error(`[setup] ${m}`); };

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

// Runs one step. Loud: its output streams through. Quiet: kept, shown only if the step fails;
// on a terminal a status line shows the step, ninja's [done/total] and the seconds so far.
function step(title, cmd, args, env = process.env) {
  return new Promise((resolve) => {
    log(title);
    const t0 = Date.now();
    const child = spawn(cmd, args, { cwd: root, env, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : ['ignore', 2, 2] }); // stdout stays clean (npm pack --json)
    const kept = [];
    let count = '';
    const status = () => process.stderr.write(`\r\x1b[K[setup] ${title}${count ? ` ${count}` : ''} (${Math.round((Date.now() - t0) / 1000)} s)`);
    const timer = quiet && tty ? setInterval(status, 1000) : undefined;
    const take = (chunk) => {
      kept.push(chunk);
      const m = /\[(\d+)\/(\d+)\][^\n]*$/.exec(chunk.toString());
      if (m) count = `${m[1]}/${m[2]}`;
    };
    if (quiet) {
      child.stdout.on('data', take);
      child.stderr.on('data', take);
    }
    child.on('close', (code) => {
      if (timer) {
        clearInterval(timer);
        process.stderr.write('\r\x1b[K');
      }
      if (code !== 0) {
        if (quiet) process.stderr.write(Buffer.concat(kept));
        console.error(`[setup] ${title}: failed (${cmd} ${args.join(' ')} exited with ${code})`);
        process.exit(1);
      }
      resolve();
    });
  });
}

// Tool -> Debian package that provides it. A package build needs only the addon's tools.
const needs = [
  ['gcc', 'build-essential'], ['g++', 'g++'], ['make', 'make'], ['cmake', 'cmake'], ['ninja', 'ninja-build'],
  ...(pack ? [] : [['musl-gcc', 'musl-tools'], ['flatc', 'flatbuffers-compiler'], ['redis-server', 'redis-server'],
    ['go', 'golang-go']]), // go: the Go program of the compatibility suite
];
const headers = [['/usr/include/linux/kvm.h', 'linux-libc-dev'], ...(pack ? [] : [['/usr/include/flatbuffers/flatbuffers.h', 'libflatbuffers-dev'],
  ['/usr/include/doctest/doctest.h', 'doctest-dev'],
  // Third-party programs of the compatibility suite (test/compat.test.ts).
  ['/bin/busybox', 'busybox-static'], ['/usr/lib/x86_64-linux-gnu/liblua5.4.a', 'liblua5.4-dev'],
  ['/usr/lib/x86_64-linux-gnu/libsqlite3.a', 'libsqlite3-dev'],
  // CPython, dynamically linked, run through a file view (test/python.test.ts): the interpreter,
  // its standard library with json, hashlib and ctypes.
  ['/usr/bin/python3', 'python3-minimal'], ['/usr/share/doc/libpython3-stdlib', 'libpython3-stdlib']])];

async function main() {
  const missing = new Set();
  for (const [cmd, pkg] of needs) if (!has(cmd)) missing.add(pkg);
  for (const [file, pkg] of headers) if (!fs.existsSync(file)) missing.add(pkg);
  if (missing.size) {
    const pkgs = [...missing].join(' ');
    if (process.getuid && process.getuid() === 0) {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      await step('updating the Debian package lists', 'apt-get', ['update', '-qq'], env);
      await step(`installing Debian packages: ${pkgs}`, 'apt-get', ['install', '-y', '-qq', ...missing], env);
    } else {
      console.error(`[setup] missing tools; run:\n  sudo apt-get install -y ${pkgs}`);
      process.exit(1);
    }
  }

  if (!fs.existsSync(path.join(root, 'node_modules', 'cmake-js')) || !fs.existsSync(path.join(root, 'node_modules', 'typescript')))
    await step('installing npm packages (npm ci)', 'npm', ['ci', '--no-audit', '--no-fund']);

  const cmakeJs = [path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js'), 'compile', '--out', 'build'];
  if (pack) {
    await step('building the native addon', process.execPath, [...cmakeJs, '--target', 'farcall_addon', '--log-level', 'error']);
    await step('compiling TypeScript', process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
    prebuild();
  } else {
    // Native addon + guest programs: cmake-js is incremental (ninja), so always run it.
    await step('building the native addon and guest programs', process.execPath, [...cmakeJs, ...(quiet ? ['--log-level', 'error'] : [])]);
    await step('compiling TypeScript', process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
    pythonRoot();
  }
  log('ready');
}

// build/pyroot: a directory a guest sees as "/" that holds Debian's CPython (dynamically linked),
// the libraries ldd names for it and its extension modules (the ELF interpreter included), and
// its standard library. Rebuilt when the interpreter changes.
function pythonRoot() {
  const bin = fs.readdirSync('/usr/bin').filter((f) => /^python3\.\d+$/.test(f)).sort().pop();
  if (!bin) return log('no /usr/bin/python3.N: build/pyroot skipped');
  const dest = path.join(root, 'build', 'pyroot');
  const stamp = path.join(dest, '.stamp');
  const want = `${bin} ${fs.statSync(path.join('/usr/bin', bin)).mtimeMs}`;
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want) return;
  fs.rmSync(dest, { recursive: true, force: true });
  const stdlib = path.join('/usr/lib', bin);
  const modules = fs.readdirSync(path.join(stdlib, 'lib-dynload')).map((f) => path.join(stdlib, 'lib-dynload', f));
  const libs = new Set();
  for (const f of [path.join('/usr/bin', bin), ...modules]) {
    const r = spawnSync('ldd', [f], { encoding: 'utf8' });
    for (const m of (r.stdout || '').matchAll(/(\/\S+\.so[.\d]*)/g)) libs.add(m[1]);
  }
  const copy = (from) => {
    const to = path.join(dest, from);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(fs.realpathSync(from), to);
  };
  copy(path.join('/usr/bin', bin));
  for (const l of libs) copy(l);
  fs.cpSync(stdlib, path.join(dest, stdlib), { recursive: true, verbatimSymlinks: true });
  fs.writeFileSync(stamp, want);
  log(`build/pyroot: ${bin}, ${libs.size} libraries, its standard library`);
}

// The addon as the package ships it: stripped, in node-gyp-build's prebuilds/<platform>-<arch>/
// layout, and refused if it needs a newer glibc than src/native.ts promises users.
function prebuild() {
  const src = path.join(root, 'build', 'Release', 'farcall.node');
  const dest = path.join(root, 'prebuilds', 'linux-x64', 'node.napi.glibc.node');
  fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const strip = spawnSync('strip', ['--strip-unneeded', '-o', dest, src], { stdio: 'inherit' });
  if (strip.status !== 0) fs.copyFileSync(src, dest);
  const promised = /GLIBC_MIN = '([\d.]+)'/.exec(fs.readFileSync(path.join(root, 'src', 'native.ts'), 'utf8'))[1];
  const syms = spawnSync('objdump', ['-T', dest], { encoding: 'utf8' }).stdout ?? '';
  const versions = [...syms.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  const [pm, pn] = promised.split('.').map(Number);
  const newest = versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a), [0, 0]);
  if (newest[0] > pm || (newest[0] === pm && newest[1] > pn)) {
    console.error(`[setup] ${dest} needs GLIBC_${newest.join('.')}, newer than the ${promised} src/native.ts promises (GLIBC_MIN)`);
    process.exit(1);
  }
  log(`prebuilt addon: ${path.relative(root, dest)} (${Math.round(fs.statSync(dest).size / 1024)} KiB, glibc >= ${newest.join('.')})`);
}

main();
