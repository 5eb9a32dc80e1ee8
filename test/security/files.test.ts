// The read-only file view cannot be escaped (issue 14): "..", absolute paths, symlinks that
// point out (absolute, relative, through directories), openat from a directory fd, /proc, and
// a path whose directory the host swaps for a symlink to the outside while the guest opens it.
// The secret file sits right beside the view, so a single ".." too many would reach it.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { RequestPool } from '../../src';
import { InvalidArgumentError } from '../../src/errors';
import { runProgram } from '../../src/run';
import { describeKvm, guest, ms } from '../helpers';

const MARKER = 'SECRET-7f3a9c-outside-the-view';

describeKvm('read-only file view: no escape', () => {
  let outside: string;
  let view: string;
  let secret: string;

  beforeAll(() => {
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-view-'));
    view = path.join(outside, 'view');
    secret = path.join(outside, 'secret.txt');
    fs.writeFileSync(secret, MARKER);
    fs.mkdirSync(path.join(view, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(view, 'inside.txt'), 'inside');
    fs.symlinkSync('inside.txt', path.join(view, 'good_link'));
    fs.symlinkSync(secret, path.join(view, 'abs_link')); // the host's absolute path
    fs.symlinkSync('../secret.txt', path.join(view, 'rel_out'));
    fs.symlinkSync('../..', path.join(view, 'sub', 'up')); // a directory link out of the view
    fs.symlinkSync('/proc/self/root', path.join(view, 'proc_root'));
    fs.mkdirSync(path.join(view, 'race_dir'));
    fs.writeFileSync(path.join(view, 'race_dir', 'secret.txt'), 'harmless');
    fs.symlinkSync('..', path.join(view, 'race_link'));
  });
  afterAll(() => fs.rmSync(outside, { recursive: true, force: true }));

  const escape = (args: string[]) => runProgram(guest('files_escape'), { args: [MARKER, ...args], files: { readOnly: view } });

  test('paths inside the view read; every escape is refused', async () => {
    const inside = ['inside.txt', '/inside.txt', 'sub/../inside.txt', '/../../inside.txt', 'good_link', 'at:/sub:../inside.txt'];
    const escapes = [
      '../secret.txt', '/../secret.txt', 'sub/../../secret.txt', '/sub/../../../secret.txt', secret, 'abs_link', 'rel_out',
      'link:rel_out', 'link:abs_link', 'sub/up/secret.txt', 'sub/up/../secret.txt', `at:/sub:../../secret.txt`, `at:/sub:${secret}`,
      `at:/sub:up/secret.txt`, `/proc/self/root${secret}`, '/proc/self/cwd/../secret.txt', `proc_root${secret}`, '/proc/self/mem',
      '/dev/mem', '/etc/passwd',
    ];
    const r = await escape([...inside, ...escapes]);
    const out = r.stdout.toString();
    expect(r.exitCode).toBe(0);
    expect(out).not.toContain(MARKER);
    expect(out).not.toContain('LEAK');
    for (const p of inside) expect(out).toContain(`${p}: ok 6\n`);
    for (const p of escapes) expect(out).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: errno \\d+$`, 'm'));
    expect(out).toContain('stat /: 1\n');
    expect(out).toContain('write: 30\n'); // EROFS
    expect(out).toContain('create: 30\n');
    // The control: the same program natively, from the view directory, does reach the secret.
    expect(fs.readFileSync(path.join(view, 'rel_out'), 'utf8')).toBe(MARKER);
  });

  test('a directory swapped for a symlink to the outside while the guest opens through it', async () => {
    // The host renames race_dir and race_link in and out of "race" as fast as it can.
    const swapper = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); const v = ${JSON.stringify(view)}; const end = Date.now() + ${ms(20000)};
       process.stdout.write('ready\\n');
       while (Date.now() < end) {
         try { fs.renameSync(v + '/race_dir', v + '/race'); fs.renameSync(v + '/race', v + '/race_dir'); } catch {}
         try { fs.renameSync(v + '/race_link', v + '/race'); fs.renameSync(v + '/race', v + '/race_link'); } catch {}
       }`,
    ]);
    // Only once the swapper runs (starting node takes seconds on an emulated CPU).
    await new Promise((resolve) => swapper.stdout!.once('data', resolve));
    try {
      const r = await escape(['race:race/secret.txt:3000', 'race:/race/../race/secret.txt:1000']);
      const out = r.stdout.toString();
      expect(out).not.toContain(MARKER);
      expect(out).toMatch(/^race:race\/secret.txt:3000: ok \d+\/3000$/m);
      expect(out).not.toContain('LEAK');
      // Some opens did go through the real directory: the race was live.
      expect(Number(/race\/secret.txt:3000: ok (\d+)/.exec(out)![1])).toBeGreaterThan(0);
    } finally {
      swapper.kill();
    }
  });

  // The view keeps a host fd per distinct file opened (4096 at most, the master's and its
  // forks' together): what a request opens is its fork's own and closed at the reset. They were once kept for the view's life, so one
  // request opening 4096 files made every later request's open of a new file fail (ENFILE).
  test("a request that opens thousands of files leaves the view's table as it found it", async () => {
    const many = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-view-many-'));
    try {
      for (let i = 0; i < 4200; i++) fs.writeFileSync(path.join(many, `f${i}`), 'x');
      const pool = await RequestPool.create(guest('scratch_req'), { size: 1, args: ['r /f0'], files: { readOnly: many } });
      try {
        const first = (await pool.run(Array.from({ length: 4150 }, (_, i) => `r /f${i}`).join(';'))).toString().split('\n');
        // /f0 is the master's (shared, not opened again); 4096 host fds in all, then ENFILE.
        expect(first.filter((l) => l.endsWith(': x'))).toHaveLength(4096);
        expect(first.filter((l) => l.endsWith('errno 23'))).toHaveLength(54);
        expect(first[4096]).toBe('r /f4096: errno 23');
        for (let k = 0; k < 2; k++) expect((await pool.run('r /f4199;r /f0;r /f1')).toString()).toBe('r /f4199: x\nr /f0: x\nr /f1: x\n');
      } finally {
        await pool.close();
      }
    } finally {
      fs.rmSync(many, { recursive: true, force: true });
    }
  });

  test('without a view the guest sees no files; a bad directory is a typed error', async () => {
    const r = await runProgram(guest('files_escape'), { args: [MARKER, 'inside.txt', secret] });
    expect(r.stdout.toString()).toContain('inside.txt: errno 2\n');
    await expect(runProgram(guest('files_escape'), { files: { readOnly: secret } })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(runProgram(guest('files_escape'), { files: { readOnly: '/no/such/dir' } })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
