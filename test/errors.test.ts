// Every error a user is likely to meet names its culprit: the program's path and where it came
// from, the pool and the backend it lacks, the entry and the entries there are, the fault's
// address and rip, the option that is unknown or of the wrong type, the bad command-line value,
// the refused connection, the missing addon, the group that may open /dev/kvm.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Backend, BackendFaultError, InvalidArgumentError, NotElfError, ProtocolError, RequestPool, runProgram, WrongLayoutError } from '../src';
import { groupName, kvmAccessFix } from '../src/doctor';
import { describeKvm, guest, root } from './helpers';

const cli = path.join(root, 'dist', 'src', 'cli.js');
const notElf = path.join(os.tmpdir(), `farcall-not-elf-${process.pid}.txt`);
beforeAll(() => fs.writeFileSync(notElf, 'plain text, not a program\n'));
afterAll(() => fs.rmSync(notElf, { force: true }));

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

describeKvm('errors name the culprit (KVM)', () => {
  test('NotElf: the path, and the context a config passes', async () => {
    const e = await failure(Backend.load(notElf, { context: 'backend kv (config backends.kv.program)' }));
    expect(e).toBeInstanceOf(NotElfError);
    expect(e.message).toContain(notElf);
    expect(e.message).toContain('config backends.kv.program');
    const r = await failure(runProgram(notElf));
    expect(r).toBeInstanceOf(NotElfError);
    expect(r.message).toContain(notElf);
  });

  test('WrongLayout: the path and the pool', async () => {
    const e = await failure(Backend.load(guest('hello_musl'), { context: 'backend cache (config backends.cache.program)' }));
    expect(e).toBeInstanceOf(WrongLayoutError);
    expect(e.message).toContain(guest('hello_musl'));
    expect(e.message).toContain('config backends.cache.program');
  });

  test('a pool whose program looks up a backend it does not list: the pool and the backend', async () => {
    const e = await failure(RequestPool.create(guest('kvstore_request'), { size: 1, context: 'pool web' }));
    expect(e).toBeInstanceOf(ProtocolError);
    expect(e.message).toMatch(/^pool web: program .*kvstore_request/);
    expect(e.message).toContain('no backend named kv is attached (attached: none)');
  });

  describe('with the counter backend', () => {
    let backend: Backend;
    beforeAll(async () => {
      backend = await Backend.load(guest('counter_backend'));
    });
    afterAll(() => backend.close());

    test('a backend crash: the entry, the fault address and rip', async () => {
      const e = (await failure(backend.call('crash'))) as BackendFaultError;
      expect(e).toBeInstanceOf(BackendFaultError);
      expect(e.message).toContain('entry crash');
      expect(e.message).toMatch(/rip 0x[0-9a-f]+/);
      expect(e.message).toMatch(/address 0x[0-9a-f]+/);
      expect(e.details.ripHex).toMatch(/^0x[0-9a-f]+$/);
      expect(typeof e.details.address).toBe('number');
      expect(await backend.call('get')).toBeInstanceOf(Buffer); // restored, still serving
    });

    test('an unknown entry: the entries there are', async () => {
      const e = await failure(backend.call('no_such_entry'));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toContain('"no_such_entry"');
      expect(e.message).toMatch(/entries: add, get, /);
    });

    test('call options: unknown and mistyped ones are refused', async () => {
      const e = await failure(backend.call('get', '', { outcap: 4 } as never));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toContain('unknown option "outcap"');
    });
  });
});

describe('errors name the culprit (no VM needed)', () => {
  test('API options: a misspelt one is refused, listing the valid ones', async () => {
    const e = await failure(RequestPool.create(guest('hello_musl'), { sise: 4 } as never));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toContain('unknown option "sise"');
    expect(e.message).toContain('size');
  });

  test('API options: a string where a number belongs is refused', async () => {
    const e = await failure(RequestPool.create(guest('hello_musl'), { size: '4' } as never));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toBe('request pool: option size must be a number, got "4"');
    const b = await failure(Backend.load(guest('counter_backend'), { instances: '2' } as never));
    expect(b.message).toContain('option instances must be a number, got "2"');
    const r = await failure(runProgram(guest('hello_musl'), { timeoutMs: '5' } as never));
    expect(r.message).toContain('option timeoutMs must be a number');
    const n = await failure(Backend.load(guest('counter_backend'), { restart: { maxFault: 3 } } as never));
    expect(n.message).toContain('restart: unknown option "maxFault"');
  });

  const farcall = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

  test('run -t abc and demo -n abc are refused before anything runs', () => {
    const r = farcall('run', '-t', 'abc', guest('hello_musl'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("'-t, --timeout <ms>' argument 'abc' is invalid");
    expect(r.stdout).toBe('');
    const d = farcall('demo', '-n', 'abc');
    expect(d.status).not.toBe(0);
    expect(d.stderr).toContain("'-n, --requests <n>' argument 'abc' is invalid");
  });

  test('farcall stats reports a refused connection', () => {
    // A port nothing listens on: bind one, note it, close it.
    const port = Number(execFileSync(process.execPath, ['-e',
      'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'], { encoding: 'utf8' }));
    const r = farcall('stats', '--url', `http://127.0.0.1:${port}`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`cannot read stats from http://127.0.0.1:${port}: connection refused`);
  });

  test('doctor without the addon: says what is missing and how to fix it, no require stack', () => {
    // A copy of the package without build/ or prebuilds/: what a broken install looks like.
    const pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-noaddon-'));
    try {
      fs.cpSync(path.join(root, 'dist', 'src'), path.join(pkg, 'dist', 'src'), { recursive: true });
      fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'));
      const r = spawnSync(process.execPath, [path.join(pkg, 'dist', 'src', 'cli.js'), 'doctor'], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).not.toContain('Require stack');
      expect(r.stdout).toMatch(/FAIL addon +the native addon does not load/);
      expect(r.stdout).toContain('reinstall farcall (npm install farcall)');
      expect(r.stdout).toMatch(/\/dev\/kvm/);
    } finally {
      fs.rmSync(pkg, { recursive: true, force: true });
    }
  });

  test("doctor's /dev/kvm advice names a group that exists, or says how to make one", () => {
    const groups = 'root:x:0:\nkvm:x:993:\ndisk:x:6:\n';
    expect(groupName(993, groups)).toBe('kvm');
    const join = kvmAccessFix({ gid: 993, mode: 0o20660 }, groups);
    expect(join).toContain('sudo usermod -aG kvm $USER');
    // root:root 0600 (this machine's /dev/kvm, whose /etc/group may have no kvm group): make one.
    const make = kvmAccessFix({ gid: 0, mode: 0o20600 }, groups);
    expect(make).toContain('no group may open /dev/kvm (root, mode 0600)');
    expect(make).toContain('groupadd');
    // A group owning the device without read/write for it is no answer either.
    expect(kvmAccessFix({ gid: 6, mode: 0o20600 }, groups)).toContain('groupadd');
    // Against the real /etc/group and /dev/kvm: any group it names exists there.
    if (fs.existsSync('/dev/kvm')) {
      const real = fs.readFileSync('/etc/group', 'utf8');
      const advice = kvmAccessFix(fs.statSync('/dev/kvm'), real);
      const named = /usermod -aG (\S+)/.exec(advice)?.[1];
      if (named && !advice.includes('groupadd')) expect(groupName(fs.statSync('/dev/kvm').gid, real)).toBe(named);
      else expect(advice).toContain('groupadd');
    }
  });
});
