// VM reuse (src/vmstock.ts): a VM retired by one tenant and given to another must carry nothing
// of the first. The hostile program (test/guests/hostile_req.c) dirties every piece of CPU state
// user code can reach, at its start and in its requests; the next tenant records what its VM held
// at its ELF entry point (before any of its own code ran) and at the start of a request, and
// both must equal what a fresh VM gives. Runs in whatever entry flavor FARCALL_ENTRY selects.
import * as fs from 'fs';

import { Backend, GuestFaultError, InvalidArgumentError, RequestPool, TimeoutError, vmStock } from '../../src';
import { defaultEntry, describeKvm, guest, ms } from '../helpers';
import { decodeCapture as decode } from './capture';

const hostile = guest('hostile_req');
const isPvm = fs.existsSync('/sys/module/kvm_pvm');

const pool = (size: number, args: string[] = []) =>
  RequestPool.create(hostile, { size, memoryMiB: 32, args, timeoutMs: ms(5000) });

/** What a tenant finds on VMs fresh from KVM: its entry record and a request's start record. */
async function fresh(): Promise<{ entry: Record<string, string>; probe: Record<string, string> }> {
  const max = vmStock().max;
  vmStock({ max: 0 });
  try {
    const p = await pool(1);
    try {
      return { entry: decode(await p.run('entry')), probe: decode(await p.run('probe')) };
    } finally {
      await p.close();
    }
  } finally {
    vmStock({ max });
  }
}

describeKvm('security: a reused VM carries nothing of its last tenant', () => {
  const saved = vmStock().max;
  afterAll(() => vmStock({ max: saved }));

  // The last tenant in the default flavor and in trap-page (which every KVM runs). A VM that ran
  // the pvm-native kernel goes only to another pvm-native fork (docs/architecture.md, "VM
  // reuse"), so after a pvm-native tenant only the next tenant's forks are sure to reuse its VMs.
  for (const tenantEntry of [...new Set([defaultEntry(), 'trap-page'])]) {
    test(`entry and request-start state on reused VMs equal a fresh VM's, after a ${tenantEntry} tenant dirtied every VM it had`, async () => {
      const clean = await fresh();
      expect(clean.entry.xmm).not.toContain('4141414141414141');
      vmStock({ max: 16 });
      // Tenant A dirties its master at init and every fork in a request (answered, crashed,
      // faulted mid-instruction), then goes away.
      const a = await RequestPool.create(hostile, { size: 3, memoryMiB: 32, args: ['dirty-init'], entry: tenantEntry as never, timeoutMs: ms(5000) });
      // Its requests start from its master's dirtied state: the pattern is there to be found.
      expect(decode(await a.run('probe')).xmm).toContain('4141414141414141');
      await Promise.all([
        a.run('dirty'),
        expect(a.run('dirty-crash')).rejects.toBeInstanceOf(GuestFaultError),
        expect(a.run('rep')).rejects.toBeInstanceOf(GuestFaultError),
      ]);
      await a.close();
      const before = vmStock();
      expect(before.idle).toBeGreaterThanOrEqual(4);
      // Tenant B (the default flavor) gets A's VMs.
      const b = await pool(2);
      try {
        const reused = vmStock().reused - before.reused;
        if (tenantEntry === 'pvm-native') expect(reused).toBeGreaterThanOrEqual(2);
        else expect(reused).toBe(3);
        expect(decode(await b.run('entry'))).toEqual(clean.entry);
        const probes = await Promise.all([b.run('probe'), b.run('probe')]);
        for (const p of probes) expect(decode(p)).toEqual(clean.probe);
      } finally {
        await b.close();
      }
    });
  }

  // PVM's native mode, switched on by the pvm-native guest kernel, cannot be switched off by the
  // host: a far call through the exit gate on such a VM ends in a triple fault of the backend.
  (isPvm ? test : test.skip)('a VM that ran the pvm-native kernel goes only to a pvm-native fork', async () => {
    vmStock({ max: 16 });
    const a = await RequestPool.create(hostile, { size: 3, memoryMiB: 32, entry: 'pvm-native', timeoutMs: ms(5000) });
    await Promise.all([a.run('probe'), a.run('probe'), a.run('probe')]);
    await a.close();
    // The next tenant calls a backend through the exit gate: from a pool (trap-page forks) and
    // from the host.
    const backend = await Backend.load(guest('scratch_backend'), { args: ['backend'], instances: 2, files: { scratch: {} } });
    const counter = await Backend.load(guest('counter_backend'));
    const b = await RequestPool.create(guest('caller'), { size: 3, backends: { counter }, timeoutMs: ms(5000) });
    try {
      expect(b.stats().gate).toBe('exit');
      const out = await Promise.all(Array.from({ length: 12 }, () => b.run('add:1')));
      expect(out.map(String).sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 12 }, (_, k) => String(k + 1)));
      const host = await Promise.all(Array.from({ length: 4 }, (_, k) => backend.call('ops', `w /tmp/f${k} 1;ls /tmp`, { outCap: 65536 })));
      for (const [k, h] of host.entries()) expect(h.toString()).toContain(`w /tmp/f${k}: 1\n`);
    } finally {
      await b.close();
      counter.close();
      await backend.close();
    }
  });

  // Stopped by its time limit wherever it was (in pvm-native, in guest user mode, which the host
  // cannot leave by writing registers): the next tenant's VMs still start as fresh ones.
  test('a tenant whose every VM was stopped by its time limit in a loop leaves nothing to the next', async () => {
    const clean = await fresh();
    vmStock({ max: 16 });
    const a = await RequestPool.create(hostile, { size: 3, memoryMiB: 32, args: ['dirty-init'], timeoutMs: ms(300) });
    await Promise.all([0, 1, 2].map(() => expect(a.run('spin')).rejects.toBeInstanceOf(TimeoutError)));
    await a.close();
    const before = vmStock();
    const b = await pool(2);
    try {
      expect(vmStock().reused - before.reused).toBeGreaterThanOrEqual(2);
      expect(decode(await b.run('entry'))).toEqual(clean.entry);
      for (const p of await Promise.all([b.run('probe'), b.run('probe')])) expect(decode(p)).toEqual(clean.probe);
    } finally {
      await b.close();
    }
  });

  // A tenant's VMs had memslots and page-table roots over a backend's instances (exit gate), or
  // the in-guest gate's (trusted, pvm-native). Deleting the memslots must drop every mapping of
  // them: the next tenant, on those VMs, finds nothing at the backend's window while it is loaded.
  for (const trusted of [false, true]) {
    test(`a backend the last tenant called is not reachable from the next tenant's reused VMs (trusted: ${trusted})`, async () => {
      vmStock({ max: 16 });
      const backend = await Backend.load(guest('counter_backend'), { memoryMiB: 16, trusted });
      try {
        const a = await RequestPool.create(guest('caller'), { size: 3, backends: { counter: backend }, timeoutMs: ms(5000) });
        const sums = await Promise.all([a.run('add:1'), a.run('add:1'), a.run('add:1')]);
        expect(sums.map(String).sort()).toEqual(['1', '2', '3']);
        await a.close();
        const before = vmStock();
        const b = await pool(3);
        try {
          expect(vmStock().reused - before.reused).toBeGreaterThanOrEqual(3);
          const at = backend.stats().memoryAt;
          await Promise.all([0, 0x1000, 0x200000].map((off) => expect(b.run(`peek:${(at + off).toString(16)}`)).rejects.toThrow(/page fault/)));
        } finally {
          await b.close();
        }
      } finally {
        backend.close();
      }
    });
  }

  test('guest memory: a tenant on reused VMs reads none of the pages the last tenant wrote', async () => {
    vmStock({ max: 16 });
    const a = await pool(3);
    // Each fork fills its 1 MiB sink (the same guest-physical pages in every tenant of this
    // program) and answers; then the tenant goes away.
    const big = await Promise.all([a.run('big:16'), a.run('big:16'), a.run('big:16')]);
    for (const b of big) expect(b.toString()).toBe('B'.repeat(16));
    await a.close();
    const before = vmStock();
    const b = await pool(3);
    try {
      expect(vmStock().reused - before.reused).toBeGreaterThanOrEqual(3);  // the forks at least (a master never takes a VM that ran pvm-native)
      const counts = await Promise.all([b.run('sink-count'), b.run('sink-count'), b.run('sink-count')]);
      for (const c of counts) expect(c.readBigInt64LE(0)).toBe(0n);
    } finally {
      await b.close();
    }
  });

  test('a stock of 0 turns reuse off; bad sizes are InvalidArgumentError', async () => {
    vmStock({ max: 0 });
    const s0 = vmStock();
    expect(s0.idle).toBe(0);  // the surplus was closed
    const p = await pool(2);
    await p.close();
    const s1 = vmStock();
    expect(s1.reused).toBe(s0.reused);
    expect(s1.created - s0.created).toBe(3);
    expect(s1.idle).toBe(0);
    // Nothing of the stock is left open: no VM or vCPU fd, no KVM worker thread.
    const kvmFds = fs.readdirSync('/proc/self/fd').filter((f) => {
      try {
        return /kvm-(vm|vcpu)/.test(fs.readlinkSync(`/proc/self/fd/${f}`));
      } catch {
        return false;
      }
    });
    expect(kvmFds).toEqual([]);
    const kvmThreads = fs.readdirSync('/proc/self/task').filter((t) => {
      try {
        return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').startsWith('kvm-');
      } catch {
        return false;
      }
    });
    expect(kvmThreads).toEqual([]);
    vmStock({ max: 4 });
    const q = await pool(6);
    await q.close();
    expect(vmStock().idle).toBe(4);  // never more than the stock's size
    for (const bad of [-1, 1.5, NaN, Number.MAX_VALUE]) expect(() => vmStock({ max: bad })).toThrow(InvalidArgumentError);
  });
});
