// The scratch directory (docs/files.md) against the program that writes it: what a request
// wrote is gone in the next request however the request ended; the size limit fails only the
// write that passes it; no path, link or rename leads out of it or writes anything on the host;
// a backend call that faults leaves none of its file changes under durability 'call'; one
// backend instance never sees another's files.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Backend, InvalidArgumentError, RequestPool, TimeoutError } from '../../src';
import { runProgram } from '../../src/run';
import { describeKvm, guest, ms } from '../helpers';

const MARKER = 'SCRATCH-MARKER-5d1e';
const req = guest('scratch_req');
const be = guest('scratch_backend');

describeKvm('security: the scratch directory', () => {
  let view: string;
  beforeAll(() => {
    view = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-scratch-view-'));
    fs.mkdirSync(path.join(view, 'tmp'));
    fs.writeFileSync(path.join(view, 'tmp', 'below'), 'view file under the mount');
    fs.writeFileSync(path.join(view, 'etc.txt'), 'read-only');
  });
  afterAll(() => fs.rmSync(view, { recursive: true, force: true }));

  const after = 'ls /tmp;r /tmp/base;r /tmp/d/n';
  const clean = 'ls /tmp: base d\nr /tmp/base: master\nr /tmp/d/n: errno 2\n';

  test("a request's files are gone in the next one: after a normal end, a fault, a timeout, a reset past maxDirtyMiB", async () => {
    const pool = await RequestPool.create(req, {
      size: 1, args: ['w /tmp/base master;mkdir /tmp/d'], files: { scratch: { maxMiB: 8 } }, timeoutMs: ms(2000), maxDirtyMiB: 1,
    });
    const resets: string[] = [];
    pool.on('reset', (e) => resets.push(`${e.kind}:${e.reason ?? ''}`));
    try {
      const changes = `w /tmp/new ${MARKER};w /tmp/base changed;w /tmp/d/n x;a /tmp/base more;mv /tmp/new /tmp/d/moved`;
      expect((await pool.run(`${changes};ls /tmp;ls /tmp/d;r /tmp/base`)).toString()).toContain(
        'ls /tmp: base d\nls /tmp/d: moved n\nr /tmp/base: changedmore\n');
      expect((await pool.run(after)).toString()).toBe(clean); // fast reset
      await expect(pool.run(`${changes};crash`)).rejects.toThrow();
      expect((await pool.run(after)).toString()).toBe(clean); // full reset after a fault
      await expect(pool.run(`${changes};spin`)).rejects.toBeInstanceOf(TimeoutError);
      expect((await pool.run(after)).toString()).toBe(clean); // after a timeout
      // 4 MiB of file data, and 3 MiB of guest memory over a 1 MiB dirty limit.
      expect((await pool.run(`${changes};big /tmp/big 4194304;rm /tmp/base;rmdir /tmp/d;mem 3145728`)).toString()).toContain('big /tmp/big: 4194304\n');
      expect((await pool.run(after)).toString()).toBe(clean);
      expect((await pool.run(after)).toString()).toBe(clean);
      // A fault and a timeout each took a full reset; the fork's pages passed maxDirtyMiB, which
      // drops pages at a reset (when is the fork's policy: docs/architecture.md).
      expect(resets.slice(0, 6).map((r) => r.split(':')[0])).toEqual(['fast', 'fast', 'full', 'fast', 'full', 'fast']);
      expect(resets.slice(6)).toContain('full:memory');
    } finally {
      await pool.close();
    }
  });

  test('a full scratch directory fails the write that passes the limit and loses nothing else', async () => {
    const pool = await RequestPool.create(req, { size: 1, args: ['w /tmp/keep kept'], files: { scratch: { maxMiB: 1 } } });
    try {
      const out = (await pool.run('w /tmp/a first;fill /tmp/f;r /tmp/a;r /tmp/keep;w /tmp/b x;a /tmp/a more;stat /tmp/f;rm /tmp/f;w /tmp/b after;r /tmp/b;r /tmp/a')).toString();
      // keep + a = 2 pages of 256: the fill gets the other 254, then ENOSPC (28).
      expect(out).toContain(`fill /tmp/f: ${254 * 4096} errno 28\n`);
      expect(out).toContain('r /tmp/a: first\nr /tmp/keep: kept\n');
      expect(out).toContain('w /tmp/b: errno 28\n'); // a new page does not fit
      expect(out).toContain('a /tmp/a: 4\n'); // the same page: fits
      expect(out).toContain(`stat /tmp/f: ${254 * 4096} file\n`);
      expect(out).toContain('rm /tmp/f: 0\nw /tmp/b: 5\nr /tmp/b: after\nr /tmp/a: firstmore\n'); // the space is back
    } finally {
      await pool.close();
    }
  });

  test('no path, link or rename leads out of it, and nothing is written on the host', async () => {
    const hostTmp = fs.readdirSync('/tmp');
    const r = await runProgramOps([
      `w /tmp/../escape.txt ${MARKER}`, `w /tmp/../../etc.txt ${MARKER}`, `w /etc.txt ${MARKER}`, `w /tmp/./../tmp/ok ${MARKER}`,
      'mv /tmp/ok /etc.txt', 'mv /etc.txt /tmp/stolen', 'mv /tmp/ok /tmp/../up', 'sym /etc.txt /tmp/s', 'sym /tmp/ok /tmp/s2',
      'link /tmp/ok /tmp/l', 'link /etc.txt /tmp/l2', 'mkdir /tmp/../newdir', 'rm /etc.txt', 'rmdir /tmp', 'rm /tmp',
      'mv /tmp /tmp/x', `w /tmp/${'n'.repeat(256)} x`, 'r /tmp/below', 'r /tmp/ok', 'r /tmp/../etc.txt', 'ls /tmp', 'ls /',
    ]);
    expect(r).toBe([
      'w /tmp/../escape.txt: errno 30', // the view: read-only
      'w /tmp/../../etc.txt: errno 30',
      'w /etc.txt: errno 30',
      `w /tmp/./../tmp/ok: ${MARKER.length}`,
      'mv /tmp/ok: errno 18', // EXDEV
      'mv /etc.txt: errno 18',
      'mv /tmp/ok: errno 18',
      'sym /etc.txt: errno 1', // no links in the scratch directory
      'sym /tmp/ok: errno 1',
      'link /tmp/ok: errno 1',
      'link /etc.txt: errno 1',
      'mkdir /tmp/../newdir: errno 30',
      'rm /etc.txt: errno 30',
      'rmdir /tmp: errno 16', // the mount point
      'rm /tmp: errno 21',
      'mv /tmp: errno 16',
      `w /tmp/${'n'.repeat(256)}: errno 36`,
      'r /tmp/below: errno 2', // the scratch directory hides the view's directory below it
      `r /tmp/ok: ${MARKER}`,
      'r /tmp/../etc.txt: read-only',
      'ls /tmp: ok',
      'ls /: etc.txt tmp',
      '',
    ].join('\n'));
    // Nothing reached the host: the view is as it was, and no file appeared in the host's /tmp.
    expect(fs.readdirSync(view).sort()).toEqual(['etc.txt', 'tmp']);
    expect(fs.readdirSync(path.join(view, 'tmp'))).toEqual(['below']);
    expect(fs.readFileSync(path.join(view, 'etc.txt'), 'utf8')).toBe('read-only');
    const fresh = fs.readdirSync('/tmp').filter((f) => !hostTmp.includes(f));
    for (const f of fresh) expect(f).not.toMatch(/^(ok|escape\.txt|stolen|up|s2?|l2?|newdir)$/);
  });

  // The ops as one request, with the view and a scratch directory at /tmp.
  async function runProgramOps(ops: string[]): Promise<string> {
    const pool = await RequestPool.create(req, { size: 1, files: { readOnly: view, scratch: {} } });
    try {
      return (await pool.run(ops.join(';'))).toString();
    } finally {
      await pool.close();
    }
  }

  test("a backend call that faults leaves none of its file changes under durability 'call'; committed ones stay", async () => {
    const backend = await Backend.load(be, {
      args: ['backend', 'w /tmp/base serve'], instances: 1, files: { scratch: { maxMiB: 4 } }, restart: { maxFaults: 1e9 },
      callTimeoutMs: ms(1000),
    });
    try {
      const call = async (s: string) => (await backend.call('ops', s, { outCap: 65536 })).toString();
      expect(await call('w /tmp/acked one;a /tmp/base +1')).toBe('w /tmp/acked: 3\na /tmp/base: 2\n');
      const state = 'ls /tmp;r /tmp/base;r /tmp/acked;stat /tmp/acked';
      const committed = 'ls /tmp: acked base\nr /tmp/base: serve+1\nr /tmp/acked: one\nstat /tmp/acked: 3 file\n';
      expect(await call(state)).toBe(committed);
      const half = 'w /tmp/half partial;a /tmp/base +2;trunc /tmp/acked 0;big /tmp/big 300000;mkdir /tmp/dir;rm /tmp/base';
      await expect(call(`${half};crash`)).rejects.toThrow();
      expect(await call(state)).toBe(committed);
      await expect(call(`${half};spin`)).rejects.toThrow();
      expect(await call(state)).toBe(committed);
      // A call that returns commits its changes.
      expect(await call('a /tmp/acked two;rm /tmp/base')).toBe('a /tmp/acked: 3\nrm /tmp/base: 0\n');
      expect(await call('ls /tmp;r /tmp/acked')).toBe('ls /tmp: acked\nr /tmp/acked: onetwo\n');
    } finally {
      await backend.close();
    }
  });

  test("durability 'instance': a fault takes the instance's files back to what it had at farcall_serve()", async () => {
    const backend = await Backend.load(be, {
      args: ['backend', 'w /tmp/base serve'], instances: 1, durability: 'instance', files: { scratch: {} }, restart: { maxFaults: 1e9 },
    });
    try {
      const call = async (s: string) => (await backend.call('ops', s, { outCap: 65536 })).toString();
      expect(await call('w /tmp/x 1;ls /tmp')).toBe('w /tmp/x: 1\nls /tmp: base x\n');
      await expect(call('crash')).rejects.toThrow();
      expect(await call('ls /tmp')).toBe('ls /tmp: base\n');
    } finally {
      await backend.close();
    }
  });

  test("one backend instance cannot see another's files", async () => {
    const backend = await Backend.load(be, { args: ['backend'], instances: 2, files: { scratch: {} } });
    try {
      const call = async (s: string) => (await backend.call('ops', s, { outCap: 65536 })).toString();
      const seen = new Map<string, Set<string>>();
      // Concurrent calls spread over both instances; each writes a file named after its instance.
      for (let round = 0; round < 10 && seen.size < 2; round++) {
        const outs = await Promise.all(Array.from({ length: 4 }, (_, i) => call(`inst;big /tmp/pad${i} 2000000;w /tmp/secret-${round}-${i} ${MARKER}`)));
        for (const o of outs) {
          const inst = /inst: (\d+)/.exec(o)![1];
          if (!seen.has(inst)) seen.set(inst, new Set());
          const m = /w \/tmp\/(secret-\d+-\d+)/.exec(o)![1];
          seen.get(inst)!.add(m);
        }
      }
      expect(seen.size).toBe(2);
      // Every instance lists exactly the files written on it, none of the other's.
      for (let i = 0; i < 8; i++) {
        const o = await call('inst;ls /tmp');
        const inst = /inst: (\d+)/.exec(o)![1];
        const names = /ls \/tmp:(.*)/.exec(o)![1].trim().split(' ').filter((n) => n.startsWith('secret-'));
        expect(new Set(names)).toEqual(seen.get(inst));
      }
    } finally {
      await backend.close();
    }
  });

  test('mmap is a private copy, MAP_SHARED is refused, locks are granted, the working directory moves', async () => {
    const pool = await RequestPool.create(req, { size: 1, files: { scratch: {} } });
    try {
      expect((await pool.run('w /tmp/m abcdefgh;map /tmp/m;r /tmp/m;lock /tmp/m;mkdir /tmp/d;cd /tmp/d;w f rel;r /tmp/d/f;cd ..;r d/f;cd /nowhere'))
        .toString()).toBe([
        'w /tmp/m: 8', 'map /tmp/m: !bcdefgh', 'mapshared /tmp/m: refused', 'r /tmp/m: abcdefgh', 'lock /tmp/m: 0 0 unlocked',
        'mkdir /tmp/d: 0', 'cd /tmp/d: 0 /tmp/d', 'w f: 3', 'r /tmp/d/f: rel', 'cd ..: 0 /tmp', 'r d/f: rel', 'cd /nowhere: -1 -', '',
      ].join('\n'));
      expect((await pool.run('r d/f;r /tmp/d/f')).toString()).toBe('r d/f: errno 2\nr /tmp/d/f: errno 2\n'); // cwd back at /
    } finally {
      await pool.close();
    }
  });

  // Sparse files: a truncate or a write far past the end holds no pages, so it must cost the
  // VMM no memory either (it once kept one pointer per 4 KiB of the file's length: 256 MiB of
  // the Node process for each 64 GiB hole). The peak RSS is reset first (clear_refs 5).
  test('sparse files cost no host memory: truncate and pwrite far past the end, across a fork', async () => {
    const pool = await RequestPool.create(req, { size: 1, args: ['trunc /tmp/m 0;w /tmp/m x;trunc /tmp/m 68719476736'], files: { scratch: { maxMiB: 1 } } });
    try {
      const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
      fs.writeFileSync('/proc/self/clear_refs', '5');
      const before = hwm();
      const files = [0, 1, 2, 3].map((i) => `w /tmp/s${i} x;trunc /tmp/s${i} 68719476736;stat /tmp/s${i}`).join(';');
      const out = (await pool.run(`${files};pw /tmp/p 68719476735;stat /tmp/p;pw /tmp/p 1099511627777;w /tmp/m y;stat /tmp/m;r /tmp/m`)).toString();
      expect(out).toContain('stat /tmp/s3: 68719476736 file\n');
      expect(out).toContain('pw /tmp/p: 1\nstat /tmp/p: 68719476736 file\npw /tmp/p: errno 27\n'); // EFBIG past 1 TiB
      expect(out).toContain('w /tmp/m: 1\nstat /tmp/m: 1 file\nr /tmp/m: y\n');
      expect(hwm() - before).toBeLessThan(64 << 20);
      // A position past the largest offset is refused, not wrapped into a negative (errno-like) one.
      expect((await pool.run('w /tmp/q x;seek /tmp/q 9223372036854775807 1;seek /tmp/q 9223372036854775807 9223372036854775807;seek /tmp/q 5 -6')).toString())
        .toBe('w /tmp/q: 1\nseek /tmp/q: 9223372036854775807 -1 errno Invalid argument\nseek /tmp/q: 9223372036854775807 -1 errno Invalid argument\nseek /tmp/q: 5 -1 errno Invalid argument\n');
      expect((await pool.run('stat /tmp/m;stat /tmp/s0')).toString()).toBe('stat /tmp/m: 68719476736 file\nstat /tmp/s0: errno 2\n');
    } finally {
      await pool.close();
    }
  });

  test('bad scratch options are refused with a typed error', async () => {
    for (const scratch of [{ path: '/' }, { path: 'tmp' }, { path: '/a/../b' }, { maxMiB: 0 }, { maxMiB: 1.5 }, { size: 1 }, 'x'])
      await expect(runProgram(guest('hello_musl'), { files: { scratch: scratch as never } })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
