// CPython from Debian, dynamically linked, through a read-only file view (build/pyroot, which
// setup assembles: the interpreter, the libraries ldd names, ld.so, the standard library). The
// loader maps the program and its ELF interpreter; ld.so opens and maps every library from the
// view. Run once as a program and as a request program in a pool (test/compat/py_request.py:
// it imports json and hashlib, then serves requests from forks), each answer compared with the
// same code run natively.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DynamicProgramError, RequestPool } from '../src';
import { runProgram } from '../src/run';
import { describeKvm, guest, ms, root } from './helpers';

const pyroot = path.join(root, 'build', 'pyroot');
const bin = fs.existsSync(path.join(pyroot, 'usr', 'bin')) ? fs.readdirSync(path.join(pyroot, 'usr', 'bin')).find((f) => /^python3\.\d+$/.test(f)) : undefined;
const script = fs.readFileSync(path.join(__dirname, 'compat', 'py_request.py'), 'utf8');

function program(): string {
  if (!bin) throw new Error('build/pyroot has no python3.N: run node scripts/setup.js (as root it installs python3-minimal and libpython3-stdlib)');
  return path.join(pyroot, 'usr', 'bin', bin);
}

describeKvm('CPython from Debian through the read-only view (PT_INTERP)', () => {
  test('a script importing json and hashlib prints what it prints natively', async () => {
    const code = 'import json, hashlib, sys; print(json.dumps({"v": sys.version_info[:2], "h": hashlib.sha256(b"farcall").hexdigest(), "m": hashlib.md5(b"x").hexdigest()}, sort_keys=True))';
    const vm = await runProgram(program(), { args: ['-c', code], files: { readOnly: pyroot }, memoryMiB: 256, timeoutMs: ms(60000) });
    const native = spawnSync(`/usr/bin/${bin}`, ['-c', code], { encoding: 'utf8', env: {} });
    expect({ out: vm.stdout.toString(), err: vm.stderr.toString(), code: vm.exitCode }).toEqual({ out: native.stdout, err: native.stderr, code: native.status });
    expect(vm.stats.unsupportedSyscalls).toBeDefined();
  });

  test('as a request program: every request in a fork of a master that imported json and hashlib', async () => {
    const pool = await RequestPool.create(program(), {
      size: 2, args: ['-c', script], files: { readOnly: pyroot, scratch: {} }, memoryMiB: 256, initTimeoutMs: ms(120000), timeoutMs: ms(30000),
    });
    try {
      for (let i = 0; i < 6; i++) {
        const doc = JSON.stringify({ text: `request ${i} ${'x'.repeat(i * 100)}`, n: i });
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-py-'));
        let native;
        try {
          native = spawnSync(`/usr/bin/${bin}`, ['-c', script, 'native', doc, dir], { encoding: 'utf8', env: {} });
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
        expect(native.status).toBe(0);
        // Each request sees a fresh state ("requests": 1) and an empty /tmp (the last request's file is gone).
        expect((await pool.run(doc)).toString()).toBe(native.stdout);
      }
    } finally {
      await pool.close();
    }
  });

  test('without a view, or with an interpreter the view lacks, a dynamic program is refused with a typed error', async () => {
    await expect(runProgram(program(), { args: ['-c', 'pass'] })).rejects.toBeInstanceOf(DynamicProgramError);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-noroot-'));
    try {
      await expect(runProgram(program(), { args: ['-c', 'pass'], files: { readOnly: empty } })).rejects.toThrow(/ELF interpreter .*cannot be read/);
      await expect(runProgram(guest('hello_dynamic'), { files: { readOnly: empty } })).rejects.toBeInstanceOf(DynamicProgramError);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
