// Per-request isolation: masters, copy-on-write forks, reset after every request.
import {
  ClosedError, GuestFaultError, InvalidArgumentError, MemoryLimitError, ProtocolError, RequestFailedError,
  RequestPool, ResetEvent, TimeoutError,
} from '../src';
import { describeKvm, guest, kvmThreadCount, ms, openFds, rssBytes, threadCount } from './helpers';

const MEM = 64;
const counter = guest('req_counter');
const make = (opts: Parameters<typeof RequestPool.create>[1] = {}) =>
  RequestPool.create(counter, { size: 1, memoryMiB: MEM, args: [String(MEM)], ...opts, timeoutMs: ms(opts.timeoutMs ?? 2000) });

describeKvm('RequestPool', () => {
  test('every request starts from the master state', async () => {
    const pool = await make({ size: 2 });
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => pool.run('count')));
      // The global counter is incremented once per request and the master's table is intact.
      expect(answers.map((b) => b.toString())).toEqual(Array(20).fill('1 200'));
      expect(pool.stats().resets.fast).toBe(20);
    } finally {
      await pool.close();
    }
  });

  test('a secret in heap, mmap, stack, globals and xmm does not survive into the next request', async () => {
    const pool = await make({ timeoutMs: 20000 }); // peek scans all 64 MiB of guest memory
    try {
      // Control: within one request the detector does see the secret everywhere it was put.
      expect((await pool.run('both:Zq8-secret-Xv')).toString()).toBe('memory xmm ');
      expect((await pool.run('secret:Zq8-secret-Xv')).toString()).toBe('stored');
      expect((await pool.run('peek:Zq8-secret-Xv')).toString()).toBe('clean');
      expect(pool.stats().forks).toBe(1); // same fork both times
    } finally {
      await pool.close();
    }
  });

  test('a crash, an endless loop and memory exhaustion fail with typed errors; the fork then works', async () => {
    const pool = await make({ timeoutMs: 1000, memoryMiB: 16, args: ['16'] });
    const resets: ResetEvent[] = [];
    const faults: string[] = [];
    pool.on('reset', (e) => resets.push(e));
    pool.on('fault', (e) => faults.push(e.error.code));
    pool.on('timeout', () => faults.push('timeout-event'));
    try {
      await expect(pool.run('crash')).rejects.toBeInstanceOf(GuestFaultError);
      expect((await pool.run('count')).toString()).toBe('1 200');
      await expect(pool.run('spin')).rejects.toBeInstanceOf(TimeoutError);
      expect((await pool.run('count')).toString()).toBe('1 200');
      await expect(pool.run('oom')).rejects.toBeInstanceOf(MemoryLimitError);
      expect((await pool.run('count')).toString()).toBe('1 200');
      await expect(pool.run('exit')).rejects.toBeInstanceOf(ProtocolError);
      await expect(pool.run('fail')).rejects.toThrow(RequestFailedError);
      expect((await pool.run('count')).toString()).toBe('1 200');
      const full = resets.filter((r) => r.kind === 'full').map((r) => r.reason);
      // The oom request touched past memoryMiB: its reset says so (every private page given back).
      expect(full).toEqual(['fault', 'timeout', 'memory limit', 'fault']);
      expect(faults).toEqual(['GuestFault', 'timeout-event', 'MemoryLimit']);
      const st = pool.stats();
      expect(st.timeouts).toBe(1);
      expect(st.resets.full).toBe(4);
    } finally {
      await pool.close();
    }
  });

  test('a crash reports the faulting address', async () => {
    const pool = await make();
    try {
      const err = await pool.run('crash').catch((e) => e);
      expect(err).toBeInstanceOf(GuestFaultError);
      expect(err.details.vector).toBe(14);
      expect(err.details.address).toBe(8);
    } finally {
      await pool.close();
    }
  });

  test('private memory past maxDirtyMiB is dropped once no request writes it; less stays fast', async () => {
    const pool = await make({ maxDirtyMiB: 1 });
    const resets: ResetEvent[] = [];
    pool.on('reset', (e) => resets.push(e));
    try {
      await pool.run('dirty:16');
      await pool.run('dirty:600'); // 600 pages > 256 pages (1 MiB): the request's own pages are kept
      await pool.run('dirty:16'); // the 600 are no longer written: dropped
      await pool.run('dirty:16');
      expect(resets.map((r) => r.kind)).toEqual(['fast', 'fast', 'full', 'fast']);
      expect(resets[0].pages).toBeGreaterThanOrEqual(16);
      expect(resets[1].pages).toBeGreaterThanOrEqual(600);
      expect(resets[2].reason).toBe('memory');
      expect(resets[2].pages).toBeGreaterThan(256);
      const fs = pool.forkStats()[0] as { privatePages: number };
      expect(fs.privatePages).toBeLessThan(256);
    } finally {
      await pool.close();
    }
  });

  test('concurrent run() calls are all answered, in a pool smaller than the load', async () => {
    const pool = await make({ size: 2 });
    try {
      const n = 60;
      const out = await Promise.all(Array.from({ length: n }, (_, i) => pool.run(`echo:req-${i}`)));
      expect(out.map((b) => b.toString())).toEqual(Array.from({ length: n }, (_, i) => `req-${i}`));
      expect(pool.stats().requests).toBe(n);
    } finally {
      await pool.close();
    }
  });

  test('a request larger than the arena is refused and the fork keeps working', async () => {
    const pool = await make();
    try {
      await expect(pool.run(Buffer.alloc((1 << 20) + 1, 65))).rejects.toBeInstanceOf(InvalidArgumentError);
      expect((await pool.run('big:300000')).length).toBe(300000);
      expect((await pool.run('count')).toString()).toBe('1 200');
    } finally {
      await pool.close();
    }
  });

  test('a program that exits before farcall_ready() is a ProtocolError', async () => {
    await expect(RequestPool.create(guest('hello_musl'), { size: 1 })).rejects.toBeInstanceOf(ProtocolError);
  });

  test('close() fails queued work, refuses new work and frees every VM', async () => {
    const fds0 = openFds();
    const pool = await make({ size: 2, concurrency: 2 }); // two run at once even on one core
    expect(openFds()).toBeGreaterThan(fds0);
    const running = Array.from({ length: 6 }, () => pool.run('echo:x').then(() => 'ok', (e) => e.constructor.name));
    await pool.close();
    const outcomes = await Promise.all(running);
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(2);
    expect(outcomes.every((o) => o === 'ok' || o === 'ClosedError')).toBe(true);
    await expect(pool.run('count')).rejects.toBeInstanceOf(ClosedError);
    await new Promise((r) => setTimeout(r, 50));
    expect(openFds()).toBe(fds0);
  });

  test('10^4 requests through a pool of 2 leak no memory, fds or threads', async () => {
    const pool = await make({ size: 2 });
    try {
      for (let i = 0; i < 500; i++) await pool.run('secret:warmup');
      const fds = openFds();
      const threads = threadCount();
      const batch = 50;
      const phase = async () => {
        for (let i = 0; i < 5000; i += batch)
          await Promise.all(Array.from({ length: batch }, (_, j) => pool.run(j % 2 ? `echo:${i}` : 'secret:abc')));
        return rssBytes();
      };
      const rss0 = rssBytes();
      const rss1 = await phase();
      const rss2 = await phase();
      expect(openFds()).toBe(fds);
      expect(threadCount()).toBe(threads);
      expect(kvmThreadCount()).toBeLessThanOrEqual(3); // master + 2 forks
      // Each fork keeps at most its private pages (16 MiB by default); after that the host
      // does not grow with the request count: the second 5000 requests add (almost) nothing.
      expect(rss1 - rss0).toBeLessThan(40 << 20);
      expect(rss2 - rss1).toBeLessThan(8 << 20);
      expect(pool.stats().requests).toBe(10500);
      expect(pool.stats().errors).toBe(0);
    } finally {
      await pool.close();
    }
  });
});
