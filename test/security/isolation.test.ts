// Request isolation against a hostile request program (test/guests/hostile_req.c), which uses no
// SDK code: whatever a request leaves in the CPU, the VMM or the fork, the next request on the
// same fork must start exactly as the first one did. Runs in whatever entry flavor
// FARCALL_ENTRY selects (CI runs every flavor).
import { GuestFaultError, InvalidArgumentError, MemoryLimitError, OutputLimitError, RequestFailedError, RequestPool } from '../../src';
import { describeKvm, guest, ms } from '../helpers';
import { decodeCapture as decode } from './capture';

const hostile = guest('hostile_req');

async function withPool(fn: (pool: RequestPool) => Promise<void>, opts: Parameters<typeof RequestPool.create>[1] = {}) {
  const pool = await RequestPool.create(hostile, { size: 1, memoryMiB: 32, ...opts, timeoutMs: ms(opts.timeoutMs ?? 5000) });
  try {
    await fn(pool);
  } finally {
    await pool.close();
  }
}

describeKvm('security: what one request leaves for the next', () => {
  test('registers, FS/GS bases, flags, x87/SSE/AVX/AVX-512 state: a request that dirties them and answers', async () => {
    await withPool(async (pool) => {
      const first = decode(await pool.run('probe'));
      expect((await pool.run('dirty')).toString()).toBe('dirtied');
      expect(decode(await pool.run('probe'))).toEqual(first);
      expect(pool.stats().resets.full).toBe(0); // the fast reset path was the one tested
      expect(pool.stats().forks).toBe(1);
    });
  });

  test('the same state after a request that dirties it and then crashes (full reset)', async () => {
    await withPool(async (pool) => {
      const first = decode(await pool.run('probe'));
      await expect(pool.run('dirty-crash')).rejects.toBeInstanceOf(GuestFaultError);
      expect(decode(await pool.run('probe'))).toEqual(first);
      expect(pool.stats().resets.full).toBe(1);
    });
  });

  test('the reset page every request starts from cannot be written by a request', async () => {
    await withPool(async (pool) => {
      const first = decode(await pool.run('probe'));
      const err = await pool.run('write-reset').catch((e) => e);
      expect(err).toBeInstanceOf(GuestFaultError);
      expect(err.details.vector).toBe(14);
      expect(decode(await pool.run('probe'))).toEqual(first);
      expect((await pool.run('dirty')).toString()).toBe('dirtied');
      expect(decode(await pool.run('probe'))).toEqual(first);
    });
  });

  test('an unfinished string instruction against a trapping region does not resume in the next request', async () => {
    await withPool(async (pool) => {
      const first = decode(await pool.run('probe'));
      for (let i = 0; i < 3; i++) {
        // Trap-page mode: MMIO exits, one per piece; elsewhere a page fault. Either way a fault.
        await expect(pool.run('rep')).rejects.toBeInstanceOf(GuestFaultError);
        expect(decode(await pool.run('probe'))).toEqual(first);
      }
    });
  });

  test('a thread pointer the CPU would refuse is refused by arch_prctl; output never reaches the next request', async () => {
    await withPool(async (pool) => {
      // Linux answers EPERM (-1) for a non-canonical FS or GS base.
      expect((await pool.run('bad-fs')).toString()).toBe('-1 -1');
      const err = await pool.run('quiet-fail').catch((e) => e);
      expect(err).toBeInstanceOf(RequestFailedError);
      expect(err.stdout.toString()).toBe('');
      expect(err.stderr.toString()).toBe('');
      expect((await pool.run('probe')).length).toBeGreaterThan(0);
    });
  });
});

describeKvm('security: responses beyond the host\'s limits', () => {
  test('a response over maxResponseBytes is refused with a typed error and the fork goes on', async () => {
    await withPool(async (pool) => {
      const first = decode(await pool.run('probe'));
      expect((await pool.run('big:9000')).length).toBe(9000);
      await expect(pool.run('big:9001')).rejects.toBeInstanceOf(OutputLimitError);
      expect(decode(await pool.run('probe'))).toEqual(first);
      expect(pool.stats().forks).toBe(1);
    }, { maxResponseBytes: 9000 });
  });

  test('maxResponseBytes beyond what a Buffer can hold is refused', async () => {
    await expect(RequestPool.create(hostile, { maxResponseBytes: 2 ** 53 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describeKvm('security: what a request can read of the VMM', () => {
  test('a failing clock_gettime writes nothing (no uninitialized VMM stack reaches the guest)', async () => {
    await withPool(async (pool) => {
      expect((await pool.run('clock')).toString()).toBe('-22 -22 untouched');
    });
  });
});

describeKvm('security: size arithmetic and the stack', () => {
  test('mmap/mremap/munmap lengths that wrap when rounded up fail', async () => {
    await withPool(async (pool) => {
      const [m, m2, r, u] = (await pool.run('wrap')).toString().split(' ').map(Number);
      expect(m).toBe(-12); // ENOMEM
      expect(m2).toBe(-12);
      expect(r).toBe(-12);
      expect(u).toBe(-22); // EINVAL
    });
  });

  test('a stack overflow faults in the guard page below the stack instead of running over memory', async () => {
    await withPool(async (pool) => {
      const err = await pool.run('recurse').catch((e) => e);
      expect(err).toBeInstanceOf(GuestFaultError);
      expect(err.message).toMatch(/stack overflow/);
      expect(err.details.vector).toBe(14);
      const first = decode(await pool.run('probe'));
      expect(first.rax).toBe('0');
    });
  });

  test('memory touched past memoryMiB through a free reservation fails the request and is given back', async () => {
    // 200 MiB reserved PROT_NONE (free) and then written without another system call: only the
    // VMM's count at the end of the request can see it. The limit is 32 MiB.
    await withPool(async (pool) => {
      const err = await pool.run('reserve-touch:200').catch((e) => e);
      expect(err).toBeInstanceOf(MemoryLimitError);
      expect(err.message).toMatch(/memoryMiB/);
      const s = pool.forkStats()[0];
      expect(Number(s.privatePages) * 4096).toBeLessThan(32 << 20); // the pages went back to the master
      expect((await pool.run('reserve-touch:4')).toString()).toBe('touched'); // within the limit: fine
      expect(decode(await pool.run('probe')).rax).toBe('0');
    });
  });
});
