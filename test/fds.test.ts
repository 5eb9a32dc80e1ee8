// File descriptors inside one guest (issue 14): poll/ppoll, pipes, dup*, eventfd, epoll, fcntl,
// umask, sysinfo, prctl — the guest's output is compared byte for byte with the same static
// binary run natively; a wait nothing can end is a typed fault; failed runs carry their stats.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { RequestPool } from '../src';
import { GuestFaultError } from '../src/errors';
import { runProgram } from '../src/run';
import { describeKvm, guest } from './helpers';

describeKvm('file descriptors inside one guest', () => {
  test('fds: the same output as natively, byte for byte', async () => {
    const native = execFileSync(guest('fds'), { input: '' });
    const r = await runProgram(guest('fds'));
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).not.toContain('WRONG');
    expect(r.stdout.toString()).toContain('done\n');
    expect(r.stdout.equals(native)).toBe(true);
    for (const nr of [7, 271, 293, 33, 292, 290, 291, 233, 95, 99, 157]) expect(r.stats.syscalls[nr]).toBeGreaterThan(0);
    expect((r.stats.syscalls[232] ?? 0) + (r.stats.syscalls[281] ?? 0)).toBeGreaterThan(0); // epoll_wait or epoll_pwait
    expect(r.stats.unsupportedSyscalls).toEqual({});
  });

  test('a read nothing can ever satisfy stops the guest as a deadlock, with its stats', async () => {
    const e = await runProgram(guest('fds'), { args: ['deadlock'] }).then(
      () => null,
      (x) => x,
    );
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.message).toMatch(/deadlock: read from an empty pipe/);
    expect(e.stats.syscalls[22]).toBe(1); // pipe
    expect(e.stats.syscalls[0]).toBe(1); // the read
  });

  test('a failed run names the unsupported calls it made', async () => {
    const e = await runProgram(guest('fds'), { args: ['abort'] }).then(
      () => null,
      (x) => x,
    );
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.details.signal).toBe(6);
    expect(e.stats.unsupportedSyscalls[57]).toBe(1);
    expect(e.stats.timeUs).toBeGreaterThan(0);
  });

  test('a pool with a file view: files open in a request are gone after it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-poolview-'));
    fs.writeFileSync(path.join(dir, 'a.txt'), 'abcdefgh');
    const pool = await RequestPool.create(guest('req_counter'), { size: 1, memoryMiB: 64, args: ['64'], files: { readOnly: dir } });
    try {
      for (let i = 0; i < 3; i++) expect((await pool.run('file:/a.txt')).toString()).toBe('fd 3: abcde');
      await expect(pool.run('file:/../a.txt/..')).rejects.toThrow(/cannot open/);
    } finally {
      await pool.close();
      fs.rmSync(dir, { recursive: true });
    }
  });

  test('the fd table resets with the fork: every request gets the same fds and an empty pipe', async () => {
    const pool = await RequestPool.create(guest('req_counter'), { size: 1, memoryMiB: 64, args: ['64'] });
    try {
      for (let i = 0; i < 5; i++) expect((await pool.run('pipe')).toString()).toBe('fds 3 4, pending 5');
      await expect(pool.run('crash')).rejects.toBeInstanceOf(GuestFaultError); // a full reset too
      expect((await pool.run('pipe')).toString()).toBe('fds 3 4, pending 5');
    } finally {
      await pool.close();
    }
  });
});
