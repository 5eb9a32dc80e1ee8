// Guest threads (docs/threads.md): POSIX threads compared with native, the thread limit, a
// deadlock, and what a request's threads may leave for the next request on a fork. Runs in
// whatever entry flavor FARCALL_ENTRY selects (CI runs every flavor).
import { spawnSync } from 'child_process';

import { Backend, GuestFaultError, InvalidArgumentError, MemoryLimitError, RequestPool, TimeoutError } from '../src';
import { runProgram } from '../src/run';
import { describeKvm, guest, ms } from './helpers';

const pthreads = guest('pthreads');
const threadReq = guest('thread_req');

async function withPool(fn: (pool: RequestPool) => Promise<void>, opts: Parameters<typeof RequestPool.create>[1] = {}) {
  const pool = await RequestPool.create(threadReq, { size: 1, ...opts, timeoutMs: ms(opts.timeoutMs ?? 5000) });
  try {
    await fn(pool);
  } finally {
    await pool.close();
  }
}

describeKvm('threads in a guest', () => {
  test('pthreads: workers, TLS, a condition-variable ping-pong, sleeps, timed waits, futex errors: the same as native', async () => {
    const native = spawnSync(pthreads, [], { env: {} });
    const vm = await runProgram(pthreads, { timeoutMs: ms(20000) });
    expect({ out: vm.stdout.toString(), err: vm.stderr.toString(), code: vm.exitCode }).toEqual({
      out: native.stdout.toString(),
      err: native.stderr.toString(),
      code: native.status,
    });
    expect(vm.stdout.toString()).toContain('ping-pong: 1000 rounds');
    expect(vm.stdout.toString()).toMatch(/^spinners: [0-9.]+ [0-9.]+ [0-9.]+ [0-9.]+, main 10500000.0$/m); // only preemption gets there
    expect(vm.stats.syscalls[56]).toBe(15); // clone, once per thread
  });

  test('lazy reservations: PROT_NONE and untouched mappings are not charged, touched memory is (ENOMEM inside the guest)', async () => {
    const r = await runProgram(guest('alloc_loop'), { args: ['reserve'], memoryMiB: 32 });
    const m = /^reserved 768 MiB\nENOMEM after (\d+) MiB\n$/.exec(r.stdout.toString());
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(20);
    expect(Number(m![1])).toBeLessThanOrEqual(32);
    expect(r.stats.enomem).toBeGreaterThan(0);
    // A program that dies of it: a typed error, and the pool it ran in goes on (test/security/isolation: oom).
    await expect(runProgram(guest('alloc_loop'), { args: ['abort'], memoryMiB: 32 })).rejects.toBeInstanceOf(MemoryLimitError);
    // Without the reservation space the 768 MiB cannot even be reserved (mmap fails: exit 2).
    expect((await runProgram(guest('alloc_loop'), { args: ['reserve'], memoryMiB: 32, reserveMiB: 0 })).exitCode).toBe(2);
    expect((await runProgram(guest('alloc_loop'), { args: ['reserve'], memoryMiB: 32, reserveMiB: 768 })).exitCode).toBe(0);
    await expect(runProgram(guest('alloc_loop'), { reserveMiB: -2 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(runProgram(guest('alloc_loop'), { reserveMiB: 3 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  test('a thread bomb is refused at maxThreads with EAGAIN, and the program goes on', async () => {
    const r = await runProgram(pthreads, { args: ['bomb'], maxThreads: 10, timeoutMs: ms(10000) });
    expect(r.stdout.toString()).toBe('created 9, then EAGAIN\n');
    const d = await runProgram(pthreads, { args: ['bomb'], timeoutMs: ms(10000) });
    expect(d.stdout.toString()).toBe('created 63, then EAGAIN\n'); // the default, 64
    await expect(runProgram(pthreads, { maxThreads: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(runProgram(pthreads, { maxThreads: 1.5 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  test('every thread blocked forever ends with a clear deadlock fault, not a hang', async () => {
    const t0 = Date.now();
    const e = await runProgram(pthreads, { args: ['deadlock'], timeoutMs: ms(10000) }).catch((x) => x);
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(String(e.message)).toMatch(/deadlock: every guest thread is blocked .*thread 1 waits on futex 0x[0-9a-f]+, thread 2 waits on futex/);
    expect(Date.now() - t0).toBeLessThan(ms(5000));
  });

  test('a request cannot leave a thread (waiting, spinning), a futex waiter, or a tampered thread (registers, FS base) for the next one', async () => {
    await withPool(async (pool) => {
      const clean = (await pool.run('probe')).toString();
      expect(clean).toBe('woken 0, worker wait 1 r12 0x1111 fs same, new tid 3, spinner none');
      // The control: within one request the probe sees what `leave` did.
      expect((await pool.run('both')).toString()).toBe('woken 1, worker wait 2 r12 0x6666 fs CHANGED, new tid 6, spinner ran');
      expect((await pool.run('probe')).toString()).toBe(clean);
      expect((await pool.run('leave')).toString()).toBe('left');
      expect((await pool.run('probe')).toString()).toBe(clean);
      expect(pool.stats().forks).toBe(1);
    });
  });

  test('after a deadlock (a full reset) and a thread bomb the master threads come back as they were', async () => {
    await withPool(
      async (pool) => {
        const clean = (await pool.run('probe')).toString();
        expect((await pool.run('leave')).toString()).toBe('left');
        await expect(pool.run('deadlock')).rejects.toThrow(/deadlock/);
        expect((await pool.run('probe')).toString()).toBe(clean);
        expect((await pool.run('bomb')).toString()).toBe('created 6: EAGAIN'); // 8 threads: main, worker, 6 new
        expect((await pool.run('probe')).toString()).toBe(clean);
      },
      { maxThreads: 8 },
    );
  });

  test('a master with threads cannot be saved to a snapshot', async () => {
    await withPool(async (pool) => {
      await expect(pool.snapshot('/tmp/farcall-threads-never.snap')).rejects.toThrow(/2 threads cannot be saved to a snapshot/);
    });
  });

  test('a thread spinning without system calls is preempted: the thread it waits for runs', async () => {
    const r = await runProgram(pthreads, { args: ['spin'], timeoutMs: ms(5000) });
    expect(r.stdout.toString()).toBe('spinner returned 42\n');
    // Alone, a thread that never stops spinning still ends at the time limit.
    await expect(runProgram(guest('spin'), { timeoutMs: ms(300) })).rejects.toBeInstanceOf(TimeoutError);
  });

  test('a backend cannot make threads: pthread_create fails with ENOSYS at start and in a call', async () => {
    // Backend instances run on their callers' vCPUs and keep no thread table (docs/threads.md).
    const backend = await Backend.load(guest('thread_backend'), { instances: 1 });
    try {
      expect((await backend.call('host_spawn', '', { outCap: 64 })).toString()).toBe('start ENOSYS, call ENOSYS');
      expect(backend.stats().instances[0].syscalls).toBeDefined();
    } finally {
      await backend.close();
    }
  });
});
