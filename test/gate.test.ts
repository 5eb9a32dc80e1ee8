// Backends and the far-call gate: persistent state, zero-copy, instances, serialization,
// and every security invariant of DESIGN.md against a hostile caller.
import { Backend, BackendFaultError, BackendUnavailableError, GuestFaultError, RestartPolicy, RequestPool, TimeoutError, WrongLayoutError } from '../src';
import { defaultEntry, describeKvm, guest, kvmThreadCount, ms, openFds } from './helpers';

const backendPath = guest('counter_backend');
const callerPath = guest('caller');

// The whole suite runs twice: with an ordinary backend (the exit gate) and with a trusted one,
// which under FARCALL_ENTRY=pvm-native takes the in-guest gate (docs/pvm.md); elsewhere the
// trusted run is the exit gate again and must behave the same.
const pvmNative = defaultEntry() === 'pvm-native';

for (const trusted of [false, true]) {
  const inGuest = trusted && pvmNative;

  async function setup(instances = 1, poolSize = 2, callTimeoutMs = 500, restart: RestartPolicy = { maxFaults: 100 }) {
    const backend = await Backend.load(backendPath, { instances, callTimeoutMs: ms(callTimeoutMs), memoryMiB: 16, restart, trusted });
    const pool = await RequestPool.create(callerPath, { size: poolSize, backends: { counter: backend }, timeoutMs: ms(5000) });
    const run = async (cmd: string) => (await pool.run(cmd)).toString();
    const close = async () => {
      await pool.close();
      backend.close();
    };
    return { backend, pool, run, close };
  }

  describeKvm(`backends and the gate (${trusted ? 'trusted backend' : 'backend'}, ${inGuest ? 'in-guest' : 'exit'} gate)`, () => {
    test('a backend keeps its state across requests and forks (per-request guests, persistent state)', async () => {
      const { pool, run, close } = await setup(1, 3);
      try {
        expect(pool.stats().gate).toBe(inGuest ? 'in-guest' : 'exit');
        expect(await run('lookup')).toBe('add=1 get=1 missing=0');
        const results = await Promise.all(Array.from({ length: 30 }, () => run('add:1')));
        // Every request starts from a fresh fork, yet the backend counted all 30 calls.
        expect(results.map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
        expect(await run('get')).toBe('30');
        expect(pool.stats().resets.fast).toBe(32);
      } finally {
        await close();
      }
    });

    test('the backend reads and writes the caller buffer in place (zero-copy)', async () => {
      const { run, close } = await setup();
      try {
        // The caller never copies the result back: it responds with its own buffer after the call.
        expect(await run('upcase:zero copy, in place')).toBe('ZERO COPY, IN PLACE');
        expect(await run('put:kept in the backend')).toBe('19');
        expect(await run('take')).toBe('kept in the backend');
      } finally {
        await close();
      }
    });

    test('two instances serve concurrent callers, each with its own memory', async () => {
      const { backend, run, close } = await setup(2, 2);
      try {
        const slow = Array.from({ length: 8 }, () => run('slow_add:20000000'));
        const done = await Promise.all(slow);
        expect(done.length).toBe(8);
        const st = backend.stats();
        expect(st.instances.length).toBe(2);
        // Both instances were used at once by the two forks.
        expect(st.instances[0].calls).toBeGreaterThan(0);
        expect(st.instances[1].calls).toBeGreaterThan(0);
        expect(st.instances[0].calls + st.instances[1].calls).toBe(8);
        // Separate memory: the two counters add up to the 8 increments.
        const a = Number(await run('get'));
        expect(a).toBeGreaterThan(0);
        expect(a).toBeLessThan(8);
      } finally {
        await close();
      }
    });

    test('host calls interleaved with guest calls stay serialized: no lost update', async () => {
      const { backend, run, close } = await setup(1, 2);
      try {
        const one = Buffer.alloc(8);
        one.writeBigInt64LE(1n);
        const guestCalls = Array.from({ length: 40 }, () => run('slow_add:200000'));
        const hostCalls = Array.from({ length: 40 }, () => backend.call('host_add', one, { outCap: 8 }));
        await Promise.all([...guestCalls, ...hostCalls]);
        expect(await run('get')).toBe('80');
        const total = await backend.call('host_add', Buffer.alloc(8), { outCap: 8 });
        expect(total.readBigInt64LE()).toBe(80n);
      } finally {
        await close();
      }
    });

    test('host calls never see another host call\'s bytes; closing during a call is safe', async () => {
      const { backend, close } = await setup(1, 1, 300);
      try {
        await backend.call('host_echo', 'HOST-SECRET-FROM-A');
        // host_peek reads 32 bytes from a 1-byte input: the rest must be zeros, not the last call's.
        const peek = await backend.call('host_peek', 'x', { outCap: 32 });
        expect(peek.toString('latin1')).not.toMatch(/SECRET/);
        expect(peek.subarray(1).every((b) => b === 0)).toBe(true);
      } finally {
        await close();
      }
      // Closing a backend while a host call is in flight: the call settles, Node stays up.
      const b = await Backend.load(backendPath, { callTimeoutMs: 200, memoryMiB: 16, trusted });
      const pending = b.callRaw('spin').then((r) => r.result, (e) => e.code);
      b.close();
      expect([-1002, 'BackendFault', 'Timeout']).toContain(await pending);
    });

    test('host calls use the byte-buffer convention', async () => {
      const { backend, close } = await setup();
      try {
        expect((await backend.call('host_echo', 'abc')).toString()).toBe('echo:abc');
        await expect(backend.call('no_such_entry', 'x')).rejects.toThrow(/no entry point/);
        const r = await backend.callRaw('host_echo', 'x'.repeat(100), { outCap: 10 });
        expect(r.result).toBe(-28);
      } finally {
        await close();
      }
    });

    describe('hostile callers', () => {
      test('cannot read or write backend memory outside a call', async () => {
        const { run, close } = await setup();
        try {
          const r = await run('read_backend').catch((e) => e);
          expect(r).toBeInstanceOf(GuestFaultError);
          expect(r.details.vector).toBe(14);
          expect(r.details.address).toBeGreaterThanOrEqual(0x10000000000);
          await expect(run('write_backend')).rejects.toBeInstanceOf(GuestFaultError);
          expect(await run('add:1')).toBe('1');
        } finally {
          await close();
        }
      });

      test('cannot enter a backend anywhere but a registered entry point', async () => {
        const { run, close } = await setup();
        try {
          for (const cmd of ['jump_mid', 'jump_unregistered']) {
            const e = await run(cmd).catch((x) => x);
            expect(e).toBeInstanceOf(GuestFaultError);
            expect(e.message).toMatch(/not a registered entry point/);
          }
          const code = await run('jump_backend_code').catch((x) => x);
          expect(code).toBeInstanceOf(GuestFaultError);
          // The backend's own window (16 GiB aligned, from 1 TiB) plus its text.
          expect(code.details.address % 2 ** 34).toBe(0x401000);
          expect(code.details.address).toBeGreaterThanOrEqual(2 ** 40);
          const ret = await run('jump_return_trap').catch((x) => x);
          expect(ret).toBeInstanceOf(GuestFaultError);
          // The in-guest flavor has no trap page at all: that address is just unmapped.
          expect(ret.message).toMatch(inGuest ? /jump into the trap page/ : /return address outside a call/);
          // A Linux system call with a gate's number from the caller's own code is not a call.
          expect(await run('gate_syscall')).toBe('-38');
          if (inGuest) {
            // The stub page is readable (x86 has no execute-only pages): it holds the stubs' code only.
            expect(await run('read_gate')).toBe(String(0xb8ca8949 | 0));
          } else {
            const rd = await run('read_gate').catch((x) => x);
            expect(rd).toBeInstanceOf(GuestFaultError);
            expect(rd.message).toMatch(/data access to the gate region/);
          }
          expect(await run('get')).toBe('0');
        } finally {
          await close();
        }
      });

      test('a pointer into backend memory passed as an argument is refused by the validation', async () => {
        const { run, close } = await setup();
        try {
          expect(await run('backend_ptr')).toBe('-14');
          expect(await run('add:2')).toBe('2');
        } finally {
          await close();
        }
      });

      test('cannot steer the backend with its flags, nor read the backend through vector registers', async () => {
        const { run, close } = await setup();
        try {
          const f = Number(await run('dirty_flags'));
          expect(f & 0x400).toBe(0); // DF: a backwards memcpy would copy memory before the buffer
          expect(f & 0x40000).toBe(0); // AC
          expect(f & 0x100).toBe(0); // TF: a trap on the first instruction would reset the backend
          expect(await run('vec_leak')).toBe('clean');
          expect(await run('add:2')).toBe('2');
        } finally {
          await close();
        }
      });

      test('a call that never returns gives the caller back its callee-saved registers', async () => {
        const { run, close } = await setup();
        try {
          expect(await run('saved_after_crash')).toBe('1122334455667788');
        } finally {
          await close();
        }
      });

      test('a split or repeated access to unbacked memory does not carry into the next request', async () => {
        const { run, close } = await setup(1, 1);
        try {
          expect(await run('add:5')).toBe('5');
          if (inGuest) expect(await run('mmio_rep')).toBe('73'); // the first byte of a stub, not unbacked memory
          for (const cmd of inGuest ? ['mmio_cross'] : ['mmio_cross', 'mmio_rep']) {
            await expect(run(cmd)).rejects.toBeInstanceOf(GuestFaultError);
            // The next request runs its own code from the master state, not the previous one's.
            expect(await run('get')).toBe('5');
          }
        } finally {
          await close();
        }
      });

      test('cannot touch page tables or guest-kernel memory', async () => {
        const { run, close } = await setup();
        try {
          for (const cmd of ['write_kernel', 'read_gdt']) {
            const e = await run(cmd).catch((x) => x);
            expect(e).toBeInstanceOf(GuestFaultError);
            expect(e.details.vector).toBe(14);
            expect(e.details.address).toBeGreaterThanOrEqual(0xffffff8000000000);
          }
          expect(await run('add:3')).toBe('3');
        } finally {
          await close();
        }
      });
    });

    describe('a backend that misbehaves mid-call is contained', () => {
      test('crash, endless loop, memory exhaustion: the caller gets an error value, only the failed call is undone', async () => {
        const { backend, run, close } = await setup(1, 1, 300);
        const faults: string[] = [];
        const restores: string[] = [];
        backend.on('fault', (e) => faults.push(e.entry));
        backend.on('restore', (e) => restores.push(e.reason));
        try {
          expect(await run('add:5')).toBe('5');
          expect(await run('crash')).toBe('-1001');
          // The half-done update of the crashed call is gone; the acknowledged add stays.
          expect(await run('get')).toBe('5');
          expect(await run('add:5')).toBe('10');
          expect(await run('spin')).toBe('-1002');
          expect(await run('get')).toBe('10');
          expect(await run('hog')).toBe('-1004');
          expect(await run('get')).toBe('10');
          expect(await run('add:1')).toBe('11');
          await new Promise((r) => setTimeout(r, 20));
          expect(faults).toEqual(['crash', 'spin', 'hog']);
          expect(restores.length).toBe(3);
          expect(restores[0]).toMatch(/vector 14/);
          expect(restores[1]).toMatch(/timed out/);
          const st = backend.stats();
          expect(st.faults).toBe(3);
          expect(st.restores).toBe(3);
        } finally {
          await close();
        }
      });

      test('blocking system calls, the caller\'s and the backend\'s inside a call, run their full time', async () => {
      // The in-guest gate watches call ages with a tick every callTimeoutMs; a sleep must not end
      // at a tick (200 ms here, then 200 ms inside a call that ends before its 300 ms limit).
      const { run, close } = await setup(1, 1, 300);
      try {
        const [slept, napped] = (await run('sleepnap:200')).split(' ').map(Number);
        expect(slept).toBeGreaterThanOrEqual(195);
        expect(napped).toBeGreaterThanOrEqual(195);
        expect(napped).toBeLessThan(ms(300));
      } finally {
        await close();
      }
    });

    test('a host call into a crashing entry gets the error value and the next call works', async () => {
        const { backend, close } = await setup();
        try {
          const r = await backend.callRaw('crash');
          expect(r.result).toBe(-1001);
          await expect(backend.call('crash')).rejects.toBeInstanceOf(BackendFaultError);
          expect((await backend.call('host_echo', 'ok')).toString()).toBe('echo:ok');
        } finally {
          await close();
        }
      });

      test('a request whose time runs out in the middle of a call stops when the call ends, and releases the instance', async () => {
        const backend = await Backend.load(backendPath, { callTimeoutMs: 1000, memoryMiB: 16, trusted });
        const pool = await RequestPool.create(callerPath, { size: 1, backends: { counter: backend }, timeoutMs: 300 });
        try {
          const t0 = Date.now();
          await expect(pool.run('spin')).rejects.toBeInstanceOf(TimeoutError);
          expect(Date.now() - t0).toBeGreaterThanOrEqual(950); // the call ran to its own limit
          // The lock was released and the call undone: the next call gets in at once.
          expect((await pool.run('add:4')).toString()).toBe('4');
          expect(backend.stats().restores).toBe(1);
        } finally {
          await pool.close();
          backend.close();
        }
      });
    });

    test('a backend that keeps failing is restarted from its program with back-off; callers get errors meanwhile', async () => {
      const { backend, run, close } = await setup(1, 1, 300, { maxFaults: 2, backoffMs: 500 });
      const restarts: Array<{ ok: boolean; attempt: number }> = [];
      backend.on('restart', (e) => restarts.push(e));
      try {
        expect(await run('add:9')).toBe('9');
        expect(await run('crash')).toBe('-1001');
        expect(await run('crash')).toBe('-1001'); // second fault in the window: restart scheduled
        // Fault events reach JS asynchronously; the restart begins once the second one is seen.
        for (let i = 0; i < 200 && !backend.isRestarting; i++) await new Promise((r) => setTimeout(r, 5));
        expect(backend.isRestarting).toBe(true);
        // Meanwhile: guest calls get FARCALL_E_BACKEND_BUSY, host calls a typed error.
        expect(await run('get')).toBe('-1003');
        await expect(backend.call('host_echo', 'x')).rejects.toBeInstanceOf(BackendUnavailableError);
        for (let i = 0; i < 400 && restarts.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        expect(restarts[0]).toMatchObject({ ok: true, attempt: 1 });
        expect(backend.isRestarting).toBe(false);
        expect(await run('get')).toBe('0');
        expect(await run('add:1')).toBe('1');
        expect(backend.stats().restarts).toBe(1);
      } finally {
        await close();
      }
    });

    test('a request program cannot be loaded as a backend, nor a backend as a request program', async () => {
      await expect(Backend.load(guest('hello_musl'))).rejects.toBeInstanceOf(WrongLayoutError);
      // A backend is static-PIE, so it loads in the request region, but it is told apart at farcall_serve().
      await expect(RequestPool.create(backendPath, { size: 1 })).rejects.toThrow(/backend program .*load it as a Backend/);
    });

    test('closing pools and backends frees every VM', async () => {
      const fds0 = openFds();
      const kvm0 = kvmThreadCount();
      for (let i = 0; i < 3; i++) {
        const { run, close } = await setup(2, 2);
        expect(await run('add:1')).toBe('1');
        await close();
      }
      await new Promise((r) => setTimeout(r, 100));
      if (global.gc) global.gc();
      expect(openFds()).toBe(fds0);
      expect(kvmThreadCount()).toBeLessThanOrEqual(kvm0);
    });
  });
}
