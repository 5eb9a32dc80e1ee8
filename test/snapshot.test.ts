// Snapshots (issue 16): pools made from a master's snapshot answer exactly like pools made from
// the program, backends restored from a snapshot have their state, and damaged or foreign files
// are refused with typed errors. Runs in whatever entry flavor FARCALL_ENTRY selects.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  Backend, Broker, ConfigError, InvalidArgumentError, RequestPool, SnapshotCorruptError, SnapshotIncompatibleError,
} from '../src';
import { describeKvm, guest, ms, openFds, root } from './helpers';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-snap-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => path.join(dir, name);

// CRC32C, to re-seal a header this test edits on purpose (native/vmm/snapshot.h).
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let c = i;
  for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  return c >>> 0;
});
function crc32c(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** Copies `src` with `edit` applied to its header page, and the header's checksum made right again. */
function withHeader(src: string, dst: string, edit: (h: Buffer) => void): string {
  // A sparse copy: snapshots of pools with a reservation space are ~1 GiB long and mostly holes,
  // and copyFileSync writes the holes out (it filled the hardware-KVM lane's tmpfs).
  execFileSync('cp', ['--sparse=always', src, dst]);
  const fd = fs.openSync(dst, 'r+');
  const h = Buffer.alloc(4096);
  fs.readSync(fd, h, 0, 4096, 0);
  edit(h);
  h.writeUInt32LE(0, 60);
  h.writeUInt32LE(crc32c(h), 60);
  fs.writeSync(fd, h, 0, 4096, 0);
  fs.closeSync(fd);
  return dst;
}

// The start record of hostile_req's probe (its struct capture): registers, flags, FS/GS, XSAVE.
const probeFields = (b: Buffer) => ({ gprs: b.subarray(0, 144).toString('hex'), xsave: b.subarray(192).toString('hex') });

describeKvm('snapshots', () => {
  // First: a backend restored from its snapshot takes the window it was saved at, which a fresh
  // process (as `farcall serve` is) has free.
  test('a broker from config: pools from snapshots, backends that keep their state across broker restarts', async () => {
    const cfgDir = fs.mkdtempSync(path.join(dir, 'cfg-'));
    const backends = { counter: { program: guest('counter_backend'), snapshot: 'counter.snap', snapshotEveryMs: 50 } };
    const cfgFile = path.join(cfgDir, 'make.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ backends, pools: { calls: { program: guest('caller'), backends: ['counter'] } } }));
    // `farcall snapshot` of the config's pool, its backends loaded as `farcall serve` loads them.
    execFileSync(process.execPath, [path.join(root, 'dist', 'src', 'cli.js'), 'snapshot', '--config', cfgFile, '--pool', 'calls', '-o', path.join(cfgDir, 'calls.snap')]);
    const config = { backends, pools: { calls: { snapshot: 'calls.snap', backends: ['counter'] } } };
    const serveFile = path.join(cfgDir, 'serve.json');
    fs.writeFileSync(serveFile, JSON.stringify(config));
    let broker = await Broker.start(serveFile);
    try {
      expect(broker.stats().pools.calls.source).toBe('snapshot');
      expect((await broker.pool('calls').run('add:5')).toString()).toBe('5');
      // A periodic snapshot that includes the call: the first one to finish after it may have
      // taken the instance before the call did (it holds every instance while it writes), so
      // the second; it starts after the first has ended and waits for any call in progress.
      let ok = 0;
      const written = new Promise((res) => broker.on('snapshot', (e) => e.ok && ++ok === 2 && res(e)));
      await written;
    } finally {
      await broker.close();
    }
    broker = await Broker.start(serveFile); // the backend comes back from its snapshot
    try {
      expect((await broker.pool('calls').run('add:1')).toString()).toBe('6');
    } finally {
      await broker.close();
    }
    await expect(Broker.start({ pools: { p: { program: guest('caller'), snapshot: path.join(cfgDir, 'calls.snap') } } })).rejects.toThrow(ConfigError);
    await expect(Broker.start({ pools: { p: { snapshot: path.join(cfgDir, 'calls.snap'), memoryMiB: 64 } } })).rejects.toThrow(/comes from the snapshot/);
    await expect(Broker.start({ backends: { b: { snapshot: path.join(cfgDir, 'none.snap') } } })).rejects.toThrow(/no such file/);
  }, ms(60000));

  test('a pool from a snapshot answers exactly like the pool it was taken from', async () => {
    const counter = guest('req_counter');
    const orig = await RequestPool.create(counter, { size: 1, memoryMiB: 32, args: ['32'], timeoutMs: 20000 });
    const snap = file('counter.snap');
    try {
      const info = await orig.snapshot(snap);
      expect(info.bytes).toBe(fs.statSync(snap).size);
      const copy = await RequestPool.fromSnapshot(snap, { size: 2, timeoutMs: 20000 });
      try {
        expect(copy.stats().source).toBe('snapshot');
        const script = ['count', 'count', 'echo:hello', 'secret:Zq8-secret-Xv', 'peek:Zq8-secret-Xv', 'dirty:300', 'count', 'big:5000'];
        for (const req of script) expect((await copy.run(req)).toString('hex')).toBe((await orig.run(req)).toString('hex'));
        await expect(copy.run('crash')).rejects.toThrow(/fault/);
        expect((await copy.run('count')).toString()).toBe('1 200');
      } finally {
        await copy.close();
      }
    } finally {
      await orig.close();
    }
  }, ms(60000));

  test('every fork of a snapshot pool starts in the exact CPU state of the original master', async () => {
    const hostile = guest('hostile_req');
    const orig = await RequestPool.create(hostile, { size: 1, memoryMiB: 32 });
    const snap = file('hostile.snap');
    try {
      await orig.snapshot(snap);
      const want = probeFields(await orig.run('probe'));
      const copy = await RequestPool.fromSnapshot(snap, { size: 2 });
      const again = await RequestPool.fromSnapshot(snap, { size: 1 }); // the file is checked once per process
      try {
        for (const p of [copy, copy, copy, again]) expect(probeFields(await p.run('probe'))).toEqual(want);
        // A snapshot of a snapshot pool is the same master again.
        const snap2 = file('hostile2.snap');
        await copy.snapshot(snap2);
        const third = await RequestPool.fromSnapshot(snap2, { size: 1 });
        expect(probeFields(await third.run('probe'))).toEqual(want);
        await third.close();
      } finally {
        await copy.close();
        await again.close();
      }
    } finally {
      await orig.close();
    }
  }, ms(60000));

  test('a backend restored from a snapshot has its state; restarts start from the latest snapshot', async () => {
    const be = await Backend.load(guest('counter_backend'), { instances: 2 });
    const snap = file('backend.snap');
    // host_add(x): counter += x, answers the total; instances are taken in turn.
    const add = async (b: Backend, x: number) => readI64(await b.call('host_add', i64(x), { outCap: 8 }));
    const totals = async (b: Backend) => [await add(b, 0), await add(b, 0)].sort((x, y) => x - y);
    try {
      await add(be, 5);
      await add(be, 7);
      expect(await totals(be)).toEqual([5, 7]);
      const info = await be.snapshot(snap);
      expect(info.bytes).toBe(fs.statSync(snap).size);
      await add(be, 1000); // after the snapshot: undone by a restart
      await add(be, 1000);
      await be.restart();
      expect(await totals(be)).toEqual([5, 7]);
    } finally {
      be.close();
    }
    // Another backend from the file: same state, and it goes on from there.
    const back = await Backend.fromSnapshot(snap);
    try {
      expect(back.entries).toContain('host_add');
      expect(await totals(back)).toEqual([5, 7]);
      await add(back, 1);
      await add(back, 1);
      expect(await totals(back)).toEqual([6, 8]);
      // Its restarts start from its snapshot too.
      await back.restart();
      expect(await totals(back)).toEqual([5, 7]);
    } finally {
      back.close();
    }
  }, ms(60000));

  test('a pool snapshot names its backends: restored with the same ones it calls them, else refused', async () => {
    const be = await Backend.load(guest('counter_backend'));
    const beAt = be.stats().memoryAt;
    const snap = file('caller.snap');
    try {
      const pool = await RequestPool.create(guest('caller'), { size: 1, backends: { counter: be } });
      await pool.snapshot(snap);
      await pool.close();
      const copy = await RequestPool.fromSnapshot(snap, { size: 1, backends: { counter: be } });
      expect((await copy.run('add:3')).toString()).toBe('3');
      expect((await copy.run('add:4')).toString()).toBe('7'); // the backend's state, not the fork's
      await copy.close();
      await expect(RequestPool.fromSnapshot(snap, { size: 1 })).rejects.toThrow(SnapshotIncompatibleError);
      await expect(RequestPool.fromSnapshot(snap, { size: 1, backends: { other: be } })).rejects.toThrow(/backend 'counter'/);
    } finally {
      be.close();
    }
    // The same program loaded elsewhere in memory is not the backend the snapshot knew.
    const a = await Backend.load(guest('counter_backend'));
    const b = await Backend.load(guest('counter_backend'));
    try {
      const which = a.stats().memoryAt === beAt ? b : a;
      await expect(RequestPool.fromSnapshot(snap, { size: 1, backends: { counter: which } })).rejects.toThrow(/sits at/);
    } finally {
      a.close();
      b.close();
    }
  }, ms(60000));

  test('trusted backends: the snapshot pool takes the same gate (in-guest on pvm-native) and its calls work', async () => {
    const be = await Backend.load(guest('counter_backend'), { trusted: true, instances: 2 });
    const snap = file('trusted.snap');
    try {
      const pool = await RequestPool.create(guest('caller'), { size: 1, backends: { counter: be } });
      const gate = pool.stats().gate;
      expect(gate).toBe(pool.stats().entry === 'pvm-native' ? 'in-guest' : 'exit');
      await pool.snapshot(snap);
      await pool.close();
      const copy = await RequestPool.fromSnapshot(snap, { size: 2, backends: { counter: be } });
      try {
        expect(copy.stats().gate).toBe(gate);
        expect((await copy.run('lookup')).toString()).toBe('add=1 get=1 missing=0');
        const sums = await Promise.all([copy.run('add:2'), copy.run('add:3')]);
        expect(sums.map((b) => Number(b.toString())).every((v) => v >= 2)).toBe(true);
        expect((await copy.run('upcase:zero-copy')).toString()).toBe('ZERO-COPY');
      } finally {
        await copy.close();
      }
    } finally {
      be.close();
    }
  }, ms(60000));

  test('damaged, truncated, foreign and missing files are refused with typed errors', async () => {
    const pool = await RequestPool.create(guest('hostile_req'), { size: 1, memoryMiB: 16 });
    const snap = file('typed.snap');
    await pool.snapshot(snap);
    await pool.close();
    const size = fs.statSync(snap).size;
    const cut = file('cut.snap');
    fs.copyFileSync(snap, cut);
    fs.truncateSync(cut, size - 100);
    await expect(RequestPool.fromSnapshot(cut)).rejects.toThrow(SnapshotCorruptError);
    fs.truncateSync(cut, 1000);
    await expect(RequestPool.fromSnapshot(cut)).rejects.toThrow(/shorter than a snapshot header/);
    // One bit of guest memory flipped: the memory checksum says so.
    const flipped = file('flipped.snap');
    fs.copyFileSync(snap, flipped);
    const fd = fs.openSync(flipped, 'r+');
    const page = firstDataPage(snap);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, page + 17);
    b[0] ^= 4;
    fs.writeSync(fd, b, 0, 1, page + 17);
    fs.closeSync(fd);
    await expect(RequestPool.fromSnapshot(flipped)).rejects.toThrow(/memory section 0 checksum/);
    // A header byte changed without re-sealing.
    const hdr = file('hdr.snap');
    fs.copyFileSync(snap, hdr);
    const hfd = fs.openSync(hdr, 'r+');
    fs.writeSync(hfd, Buffer.from([0x99]), 0, 1, 300);
    fs.closeSync(hfd);
    await expect(RequestPool.fromSnapshot(hdr)).rejects.toThrow(SnapshotCorruptError);
    // Sound files this farcall cannot use.
    const version = withHeader(snap, file('version.snap'), (h) => h.write('0.0.9\0\0', 16, 'latin1'));
    await expect(RequestPool.fromSnapshot(version)).rejects.toThrow(/made by farcall 0.0.9/);
    const format = withHeader(snap, file('format.snap'), (h) => h.writeUInt32LE(h.readUInt32LE(8) + 1, 8));
    await expect(RequestPool.fromSnapshot(format)).rejects.toThrow(SnapshotIncompatibleError);
    const cpu = withHeader(snap, file('cpu.snap'), (h) => h.writeUInt32LE(h.readUInt32LE(80 + 4 * 5) ^ 0x20, 80 + 4 * 5));
    await expect(RequestPool.fromSnapshot(cpu)).rejects.toThrow(/CPUID 7.0 EBX differs/);
    const xcr0 = withHeader(snap, file('xcr0.snap'), (h) => h.writeBigUInt64LE(h.readBigUInt64LE(64) ^ 4n, 64));
    await expect(RequestPool.fromSnapshot(xcr0)).rejects.toThrow(/XCR0/);
    await expect(Backend.fromSnapshot(snap)).rejects.toThrow(/request pool snapshot, not a backend's/);
    const mode = withHeader(snap, file('mode.snap'), (h) => h.writeUInt32LE(h.readUInt32LE(72) === 0 ? 2 : 0, 72));
    await expect(RequestPool.fromSnapshot(mode)).rejects.toThrow(SnapshotIncompatibleError);
    const notSnap = file('not.snap');
    fs.writeFileSync(notSnap, Buffer.alloc(8192, 1));
    await expect(RequestPool.fromSnapshot(notSnap)).rejects.toThrow(/not a farcall snapshot/);
    await expect(RequestPool.fromSnapshot(file('missing.snap'))).rejects.toThrow(InvalidArgumentError);
  }, ms(60000));

  test('10^4 fuzzed snapshot files: typed errors, no crash, no hang', async () => {
    const fuzz = path.join(root, 'build', 'native', 'farcall-snapfuzz');
    const pool = await RequestPool.create(guest('hostile_req'), { size: 1, memoryMiB: 16 });
    await pool.snapshot(file('fuzz-master.snap'));
    await pool.close();
    const be = await Backend.load(guest('counter_backend'), { instances: 2, memoryMiB: 8 });
    await be.snapshot(file('fuzz-backend.snap'));
    be.close();
    const run = (kind: string, snap: string, n: number, seed: number) =>
      JSON.parse(execFileSync(fuzz, [kind, file(snap), String(n), String(seed)], { encoding: 'utf8', timeout: ms(120000) })) as Record<string, number>;
    const m = run('master', 'fuzz-master.snap', 6000, 1);
    const b = run('backend', 'fuzz-backend.snap', 4000, 2);
    for (const r of [m, b]) {
      expect(r.UNTYPED).toBeUndefined();
      expect(r.hang).toBeUndefined();
      expect(r.SnapshotCorrupt).toBeGreaterThan(r.iterations / 4);
      expect(r.SnapshotIncompatible).toBeGreaterThan(0);
    }
    expect(m.iterations + b.iterations).toBeGreaterThanOrEqual(10000);
    // Re-sealed damage reaches the checks behind the checksums: some files load and serve.
    expect(Object.keys(m).some((k) => k.startsWith('loaded+'))).toBe(true);
    expect(b.loaded).toBeGreaterThan(0);
  }, ms(120000));

  test('no descriptors leak across snapshot pools', async () => {
    const snap = file('fuzz-master.snap');
    const before = openFds();
    for (let i = 0; i < 5; i++) {
      const p = await RequestPool.fromSnapshot(snap, { size: 1 });
      await p.run('probe');
      await p.close();
    }
    expect(openFds()).toBe(before);
  }, ms(60000));
});

function i64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(v));
  return b;
}
function readI64(b: Buffer): number {
  return Number(b.readBigInt64LE(0));
}
// Where the first page of guest memory with data lies in a snapshot (its first section's data).
function firstDataPage(snap: string): number {
  const h = Buffer.alloc(4096);
  const fd = fs.openSync(snap, 'r');
  fs.readSync(fd, h, 0, 4096, 0);
  const buf = Buffer.alloc(4096);
  for (let i = 0; i < h.readUInt32LE(56); i++) {
    const e = 256 + 32 * i;
    if (h.readUInt32LE(e) !== 2) continue;
    const off = Number(h.readBigUInt64LE(e + 8));
    for (let p = off; ; p += 4096) {
      fs.readSync(fd, buf, 0, 4096, p);
      if (buf.some((x) => x !== 0)) {
        fs.closeSync(fd);
        return p;
      }
    }
  }
  throw new Error('no data page');
}
