// Backend state against hostile callers: no caller can take away writes acknowledged to other
// callers, by faulting inside calls, by timing out inside them, or by making the backend log.
// Runs with an ordinary backend (the exit gate) and a trusted one (the in-guest gate under
// FARCALL_ENTRY=pvm-native; elsewhere the exit gate again).
import { Backend, BackendRestoreEvent, RequestPool, TimeoutError } from '../../src';
import { defaultEntry, describeKvm, guest, ms } from '../helpers';

const backendPath = guest('counter_backend');
const callerPath = guest('caller');
const pvmNative = defaultEntry() === 'pvm-native';

for (const trusted of [false, true]) {
  const gate = trusted && pvmNative ? 'in-guest' : 'exit';

  describeKvm(`security: backend state under hostile callers (${gate} gate${trusted ? ', trusted' : ''})`, () => {
    const load = (opts: Parameters<typeof Backend.load>[1] = {}) =>
      Backend.load(backendPath, { memoryMiB: 16, trusted, restart: { maxFaults: 1e9 }, ...opts, callTimeoutMs: ms(opts.callTimeoutMs ?? 200) });
    const pool = (backend: Backend, opts: Parameters<typeof RequestPool.create>[1] = {}) =>
      RequestPool.create(callerPath, { size: 1, backends: { counter: backend }, ...opts, timeoutMs: ms(opts.timeoutMs ?? 5000) });

    test('every acknowledged write survives callers that keep crashing and timing out inside calls', async () => {
      const backend = await load();
      const writers = await pool(backend, { size: 2 });
      const crasher = await pool(backend);
      // Its own limit (60 ms) is far below the call's (200 ms): each request times out inside a call.
      const staller = await pool(backend, { timeoutMs: 60 });
      const restores: BackendRestoreEvent[] = [];
      backend.on('restore', (e) => restores.push(e));
      try {
        let acked = 0;
        const write = async (n: number) => {
          for (let i = 0; i < n; i++) {
            const v = Number((await writers.run('add:1')).toString());
            expect(v).toBeGreaterThan(0);
            acked++;
          }
        };
        let crashes = 0, stalls = 0;
        const crash = async (n: number) => {
          for (let i = 0; i < n; i++) {
            expect((await crasher.run('crash')).toString()).toBe('-1001');
            crashes++;
          }
        };
        const stall = async (n: number) => {
          for (let i = 0; i < n; i++) {
            await expect(staller.run('spin')).rejects.toBeInstanceOf(TimeoutError);
            stalls++;
          }
        };
        await Promise.all([write(150), write(150), crash(30), stall(6)]);
        expect(acked).toBe(300);
        expect((await writers.run('get')).toString()).toBe(String(acked));
        expect(crashes).toBe(30);
        expect(stalls).toBe(6);
        await new Promise((r) => setTimeout(r, 50));
        // Every failed call was undone (its own writes only) and reported.
        expect(restores.length).toBe(36);
        expect(restores.every((r) => /undone/.test(r.reason))).toBe(true);
        const st = backend.stats();
        expect(st.faults).toBe(36);
        expect(st.durability).toBe('call');
      } finally {
        await Promise.all([writers.close(), crasher.close(), staller.close()]);
        backend.close();
      }
    });

    test('a caller\'s own time limit does not cut a call in the middle: the call runs to its end', async () => {
      const backend = await load({ callTimeoutMs: 3000 });
      const p = await pool(backend, { timeoutMs: 100 });
      const faults: string[] = [];
      backend.on('fault', (e) => faults.push(e.entry));
      const total = async (add: number) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(BigInt(add));
        return Number((await backend.call('host_add', b)).readBigInt64LE(0));
      };
      try {
        expect(await total(5)).toBe(5);
        const before = backend.stats().calls;
        const t0 = Date.now();
        await expect(p.run(`nap:${ms(400)}`)).rejects.toBeInstanceOf(TimeoutError);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(ms(400) - 10); // it waited for the call to return
        expect(backend.stats().calls).toBe(before + 1);
        expect(faults).toEqual([]);
        expect(await total(0)).toBe(5);
      } finally {
        await p.close();
        backend.close();
      }
    });

    test('a backend that logs on every call keeps its state; its output reaches the host', async () => {
      const backend = await load({ callTimeoutMs: 5000 });
      const p = await pool(backend, { timeoutMs: 20000 });
      let bytes = 0;
      backend.on('output', (e) => {
        expect(e.stream).toBe('stdout');
        bytes += e.data.length;
      });
      try {
        // 100 calls x 20,000 bytes: twice the old 1 MiB capture limit.
        expect((await p.run('chatty:100')).toString()).toBe('100');
        expect((await p.run('get')).toString()).toBe('100');
        await new Promise((r) => setTimeout(r, 100));
        const st = backend.stats();
        expect(st.faults).toBe(0);
        expect(bytes + st.outputDropped).toBe(100 * 20000);
        expect(bytes).toBeGreaterThan(0);
      } finally {
        await p.close();
        backend.close();
      }
    });

    test("durability 'instance' is the explicit opt-out: a fault restores the state after farcall_serve()", async () => {
      const backend = await load({ durability: 'instance' });
      const p = await pool(backend);
      try {
        expect((await p.run('add:7')).toString()).toBe('7');
        expect((await p.run('crash')).toString()).toBe('-1001');
        expect((await p.run('get')).toString()).toBe('0');
        expect(backend.stats().durability).toBe('instance');
      } finally {
        await p.close();
        backend.close();
      }
    });
  });
}
