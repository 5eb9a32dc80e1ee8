// Entry flavors: chosen by an explicit option per VM (FARCALL_ENTRY only as the default),
// invalid values refused with a typed error, and one list of error codes shared by the VMM
// and TypeScript.
import { execFileSync } from 'child_process';
import * as path from 'path';

import { Backend, errorClasses, InvalidArgumentError, RequestPool, runProgram } from '../src';
import { native } from '../src/native';
import { describeKvm, guest, root } from './helpers';

const isPvm = require('fs').existsSync('/sys/module/kvm_pvm');

describe('error codes', () => {
  test('every code of the VMM list (native/vmm/error_codes.h) has its TypeScript class, and no TS code is missing from it', () => {
    const codes = native().errorCodes;
    expect(codes.length).toBeGreaterThan(15);
    expect([...codes].sort()).toEqual(Object.keys(errorClasses).sort());
  });
});

describeKvm('entry flavors', () => {
  test('an unknown flavor is refused with a typed error naming the valid ones, for programs, pools and backends', async () => {
    await expect(runProgram(guest('hello_musl'), { entry: 'fast' as never })).rejects.toThrow(InvalidArgumentError);
    await expect(runProgram(guest('hello_musl'), { entry: 'fast' as never })).rejects.toThrow(/trap-page, out-stub, pvm-native/);
    await expect(RequestPool.create(guest('req_counter'), { entry: 'x' as never })).rejects.toThrow(InvalidArgumentError);
    await expect(Backend.load(guest('counter_backend'), { entry: 'x' as never })).rejects.toThrow(InvalidArgumentError);
  });

  test('FARCALL_ENTRY naming no flavor is refused (not ignored), and doctor says so', () => {
    const script = `const f=require(${JSON.stringify(path.join(root, 'dist', 'src'))});
      f.runProgram(${JSON.stringify(guest('hello_musl'))}).then(()=>console.log('ran'),(e)=>console.log(e.code+': '+e.message));
      console.log(JSON.stringify(require(${JSON.stringify(path.join(root, 'dist', 'src', 'native'))}).native().doctor().entryError ?? null));`;
    const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, FARCALL_ENTRY: 'bogus' }, encoding: 'utf8' });
    expect(out).toMatch(/FARCALL_ENTRY: entry flavor 'bogus' is not one of/);
    expect(out).toMatch(/InvalidArgument: .*FARCALL_ENTRY/);
  });

  (isPvm ? test : test.skip)('on kvm_pvm the option picks the flavor per VM in one process; the default is pvm-native once its self-check passes', async () => {
    const tp = await runProgram(guest('hello_musl'), { entry: 'trap-page' });
    const pn = await runProgram(guest('hello_musl'), { entry: 'pvm-native' });
    expect(tp.stdout.toString()).toBe(pn.stdout.toString());
    // Forwarded system calls leave by the PVM kernel's `out` in one, by the trap-page fetch in the other.
    expect(pn.stats.exits.io).toBeGreaterThan(0);
    expect(pn.stats.exits.internal).toBe(0);
    expect(tp.stats.exits.internal).toBeGreaterThan(0);
    expect(tp.stats.exits.io).toBe(0);
    const pool = await RequestPool.create(guest('req_counter'), { size: 1, entry: 'pvm-native' });
    try {
      expect(pool.stats().entry).toBe('pvm-native');
      expect((await pool.run('count')).toString()).toBe('1 200');
    } finally {
      await pool.close();
    }
    const env = { ...process.env };
    delete env.FARCALL_ENTRY;
    const d = execFileSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(path.join(root, 'dist', 'src', 'native'))}).native().doctor()))`], { env, encoding: 'utf8' });
    expect(JSON.parse(d)).toMatchObject({ flavor: 'pvm', entryMode: 'pvm-native' });
  });
});
