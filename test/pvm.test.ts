// The PVM-native flavor (FARCALL_ENTRY=pvm-native, docs/pvm.md): the guest kernel enables
// kvm_pvm's direct switching and answers host-free system calls inside the guest.
// Skipped where the host is not kvm_pvm; with FARCALL_REQUIRE_KVM=1 on a kvm_pvm host every test
// must pass. Every test sets FARCALL_ENTRY itself (the VMM reads it at each VM creation).
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { guest, kvmAvailable, root } from './helpers';

const isPvm = fs.existsSync('/sys/module/kvm_pvm');
const describePvm: jest.Describe = (kvmAvailable() && isPvm ? describe : describe.skip) as jest.Describe;
const describeNotPvm: jest.Describe = (kvmAvailable() && !isPvm ? describe : describe.skip) as jest.Describe;

const probe = guest('pvm_probe');

interface Outcome {
  ok: boolean;
  exitCode?: number;
  stdout?: string;
  stats?: { syscalls: Record<string, number>; exits: Record<string, number> };
  code?: string;
  message?: string;
  details?: { vector?: number; rip?: number; address?: number; errorCode?: number };
  ms?: number;
}
type Job =
  | { run: string; args?: string[]; opts?: Record<string, unknown> }
  | { pool: string; args: string[]; opts: Record<string, unknown>; requests: string[] }
  | { gate: { backends: Record<string, Record<string, unknown>>; size: number; listen?: boolean; parallel?: boolean; same?: boolean }; requests: string[] };

// The outcome of a gate job after its requests: which gate the pool's calls took, the exits the
// forks took for the gate, the backends' counters and the call events heard.
interface GateSummary {
  gate: string;
  gateExits: number;
  instances: number[];
  calls: number;
  events: string[];
}

// The entry mode is read from the real environment at each VM creation, and jest's
// process.env is a sandbox copy: so every run happens in a child node process (the compiled
// dist/, as the CLI tests use) whose environment names the mode.
const CHILD = `
const { runProgram, RequestPool, Backend } = require(${JSON.stringify(path.join(root, 'dist', 'src'))});
const err = (e) => ({ ok: false, code: e.code, message: e.message, details: e.details });
(async () => {
  const out = [];
  for (const j of JSON.parse(process.env.PVM_JOBS)) {
    const t0 = Date.now();
    if (j.run) {
      try {
        const r = await runProgram(j.run, { args: j.args ?? [], ...(j.opts ?? {}) });
        out.push({ ok: true, exitCode: r.exitCode, stdout: r.stdout.toString(), stats: r.stats, ms: Date.now() - t0 });
      } catch (e) { out.push({ ...err(e), ms: Date.now() - t0 }); }
    } else if (j.gate) {
      const backends = {};
      const events = [];
      for (const [name, o] of Object.entries(j.gate.backends)) {
        backends[name] = j.gate.same && Object.keys(backends).length
          ? Object.values(backends)[0]
          : await Backend.load(${JSON.stringify(guest('counter_backend'))}, { memoryMiB: 16, ...o });
        if (j.gate.listen) backends[name].on('call', (e) => events.push(name + '.' + e.entry));
      }
      const pool = await RequestPool.create(${JSON.stringify(guest('caller'))}, { size: j.gate.size, backends });
      const one = (q) => pool.run(q).then((r) => ({ ok: true, stdout: r.toString() }), err);
      if (j.gate.parallel) out.push(...(await Promise.all(j.requests.map(one))));
      else for (const q of j.requests) out.push(await one(q));
      await new Promise((r) => setTimeout(r, 50));
      const forks = pool.forkStats();
      const b = Object.values(backends)[0].stats();
      out.push({ ok: true, stdout: JSON.stringify({
        gate: pool.stats().gate,
        gateExits: forks.reduce((n, f) => n + f.exits.gate, 0),
        instances: forks.map((f) => f.instance ?? -1),
        calls: b.calls,
        events,
      }) });
      await pool.close();
      for (const x of new Set(Object.values(backends))) x.close();
    } else {
      const pool = await RequestPool.create(j.pool, { args: j.args, ...j.opts });
      for (const q of j.requests) {
        try { out.push({ ok: true, stdout: (await pool.run(q)).toString() }); } catch (e) { out.push(err(e)); }
      }
      out.push({ ok: true, stdout: JSON.stringify(pool.stats().resets) });
      await pool.close();
    }
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stdout.write(JSON.stringify([err(e)])); });
`;

function jobs(mode: string, list: Job[]): Promise<Outcome[]> {
  const env = { ...process.env, FARCALL_ENTRY: mode, PVM_JOBS: JSON.stringify(list) };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', CHILD], { env, timeout: 120000, maxBuffer: 1 << 24 }, (e, stdout, stderr) => {
      if (e) reject(new Error(`${e.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Outcome[]);
    });
  });
}
const one = async (mode: string, job: Job) => (await jobs(mode, [job]))[0];

describePvm('pvm-native: entering PVM mode', () => {
  test('10^4 getppid calls are answered in the guest with no VM exit; the trap page takes 10^4 exits', async () => {
    const pvm = await one('pvm-native', { run: probe, args: ['getppid', '10000'] });
    expect(pvm.stdout).toBe('getppid x10000 bad=0 pid=1 tid=1 uid=0\n');
    // Only the program's start-up, output and exit reach the VMM.
    expect(pvm.stats!.exits.syscall).toBeLessThan(20);
    expect(pvm.stats!.syscalls[110]).toBeUndefined(); // the VMM never saw a getppid
    const trap = await one('trap-page', { run: probe, args: ['getppid', '10000'] });
    expect(trap.stdout).toBe(pvm.stdout);
    expect(trap.stats!.exits.syscall).toBeGreaterThanOrEqual(10000);
    expect(trap.stats!.syscalls[110]).toBe(10000);
  });

  test('forwarded system calls reach the VMM with the user registers (output, exit code, C++ runtime)', async () => {
    const list: Job[] = ['hello_glibc', 'hello_musl', 'hello_glibc_pie', 'hello_cxx', 'malloc_heavy'].map((n) => ({
      run: guest(n),
      args: ['a b'],
    }));
    const [pvm, trap] = await Promise.all([jobs('pvm-native', list), jobs('trap-page', list)]);
    for (let i = 0; i < list.length; i++) {
      expect(pvm[i].ok).toBe(true);
      expect(pvm[i].stdout).toBe(trap[i].stdout);
      expect(pvm[i].exitCode).toBe(trap[i].exitCode);
      expect(pvm[i].stats!.exits.syscall).toBeGreaterThan(0);
    }
    expect(pvm[0].stdout).toMatch(/^hello from .* \(argc=2\)/);
  });

  test('clocks answered in the guest agree with the host clocks', async () => {
    const before = Date.now();
    const r = await one('pvm-native', { run: probe, args: ['clock'] });
    const after = Date.now();
    const c = JSON.parse(r.stdout!);
    expect(c.ret).toEqual([0, 0, 0, 0, 0]);
    const ms = (ts: number[]) => ts[0] * 1000 + ts[1] / 1e6;
    const rt = ms(c.rt);
    expect(rt).toBeGreaterThanOrEqual(before - 50);
    expect(rt).toBeLessThanOrEqual(after + 50);
    expect(c.rt[1]).toBeLessThan(1e9);
    // CLOCK_MONOTONIC: the host's (the child's uptime-scale clock), advancing.
    const m1 = c.m1[0] * 1e3 + c.m1[1] / 1e6, m2 = c.m2[0] * 1e3 + c.m2[1] / 1e6;
    const uptimeMs = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
    expect(Math.abs(m2 - uptimeMs)).toBeLessThan(5000);
    expect(m2).toBeGreaterThan(m1);
    const tv = c.tv[0] * 1000 + c.tv[1] / 1000;
    expect(Math.abs(tv - rt)).toBeLessThan(100);
    expect(c.tv[1]).toBeLessThan(1e6);
    expect(Math.abs(ms(c.coarse) - rt)).toBeLessThan(100);
    expect(Math.abs(c.time * 1000 - rt)).toBeLessThan(1100);
    // None of those six calls left the guest.
    expect(r.stats!.syscalls[228]).toBeUndefined();
    expect(r.stats!.syscalls[96]).toBeUndefined();
    expect(r.stats!.syscalls[201]).toBeUndefined();
  });

  test('pointers the guest kernel may not write go to the VMM, which answers EFAULT (and the kernel page stays intact)', async () => {
    const r = await one('pvm-native', { run: probe, args: ['badptr'] });
    const [a, b, c, d, e, f, rest] = r.stdout!.split(' ');
    expect([a, b, c, d, e, f].map(Number)).toEqual([-14, -14, -14, -14, -14, -22]);
    expect(rest).toBe('after=0');
    const sec = Number(/sec=(\d+)/.exec(r.stdout!)![1]);
    expect(Math.abs(sec - Date.now() / 1000)).toBeLessThan(5);
    expect(r.stats!.syscalls[228]).toBe(4); // kernel, null, page 0, clock id 99
    expect(r.stats!.syscalls[96]).toBe(1);
    expect(r.stats!.syscalls[201]).toBe(1);
  });

  test('arch_prctl GS base reaches the user GS despite kvm_pvm flipping GS on every transition', async () => {
    const [pvm, trap] = await Promise.all([
      one('pvm-native', { run: probe, args: ['gs'] }),
      one('trap-page', { run: probe, args: ['gs'] }),
    ]);
    expect(pvm.stdout).toBe('set=0 get=0x123456000 rdgsbase=0x123456000 after=0x123456000\n');
    expect(trap.stdout).toBe(pvm.stdout);
  });

  test('user mode cannot use PVM instructions: int $0x19 is a #GP, a hypercall (int $0x1b) a #UD', async () => {
    const out = await jobs('pvm-native', [{ run: probe, args: ['int19'] }, { run: probe, args: ['hc'] }]);
    // int $0x19 reaches the guest IDT's DPL-0 gate; kvm_pvm itself turns a user hypercall into #UD.
    expect(out.map((o) => [o.code, o.details?.vector])).toEqual([
      ['GuestFault', 13],
      ['GuestFault', 6],
    ]);
    for (const o of out) expect(o.details!.rip).toBeLessThan(0x800000); // at the instruction, in the program
  });

  test('faults from user mode are reported with vector, RIP and CR2, as in the trap-page flavor', async () => {
    const list: Job[] = ['null', 'wild', 'ud2', 'div', 'kernel'].map((how) => ({ run: guest('crash'), args: [how] }));
    const [pvm, trap] = await Promise.all([jobs('pvm-native', list), jobs('trap-page', list)]);
    for (let i = 0; i < list.length; i++) {
      expect(pvm[i].code).toBe('GuestFault');
      expect(pvm[i].details!.vector).toBe(trap[i].details!.vector);
      expect(pvm[i].details!.rip).toBe(trap[i].details!.rip);
      expect(pvm[i].details!.address).toBe(trap[i].details!.address);
      // Error codes agree except the present bit of a user access to the kernel's upper half,
      // which kvm_pvm reports as not present.
      expect(pvm[i].details!.errorCode! & ~1).toBe(trap[i].details!.errorCode! & ~1);
    }
  });

  test('the out-stub entry (hardware KVM only) is refused here with a clear KvmUnavailableError', async () => {
    // Under kvm_pvm `syscall` stays at CPL 3 and cannot reach a ring-0 stub: every program would
    // die at its first system call, so the VMM refuses the mode instead.
    const r = await one('out-stub', { run: guest('hello_musl') });
    expect(r.ok).toBe(false);
    expect(r.code).toBe('KvmUnavailable');
    expect(r.message).toMatch(/needs hardware KVM/);
  });

  test('an endless loop is stopped by the timeout, and a pool of pvm-native forks survives timeouts and crashes', async () => {
    const out = await jobs('pvm-native', [
      { run: guest('spin'), opts: { timeoutMs: 200 } },
      {
        pool: guest('req_counter'),
        args: ['32'],
        opts: { size: 1, memoryMiB: 32, timeoutMs: 1000 },
        requests: ['count', 'count', 'spin', 'count', 'crash', 'echo:after', 'spin', 'spin', 'count'],
      },
    ]);
    expect(out[0].code).toBe('Timeout');
    expect(out[0].ms!).toBeLessThan(3000);
    const answers = out.slice(1, -1).map((o) => (o.ok ? o.stdout : o.code));
    expect(answers).toEqual(['1 200', '1 200', 'Timeout', '1 200', 'GuestFault', 'after', 'Timeout', 'Timeout', '1 200']);
    const resets = JSON.parse(out[out.length - 1].stdout!);
    expect(resets.full).toBe(4);
  });
});

describePvm('pvm-native: the in-guest far-call gate (trusted backends)', () => {
  const adds = Array.from({ length: 20 }, () => 'add:1');
  const summary = (out: Outcome[]) => JSON.parse(out[out.length - 1].stdout!) as GateSummary;

  test('calls into a trusted backend take no VM exit (one with per-call undo); an ordinary backend takes the exit gate', async () => {
    const [trusted, durable, ordinary] = await Promise.all([
      jobs('pvm-native', [{ gate: { backends: { counter: { trusted: true, durability: 'instance' } }, size: 1 }, requests: adds }]),
      jobs('pvm-native', [{ gate: { backends: { counter: { trusted: true } }, size: 1 }, requests: adds }]),
      jobs('pvm-native', [{ gate: { backends: { counter: {} }, size: 1 }, requests: adds }]),
    ]);
    const want = adds.map((_, i) => String(i + 1));
    expect(trusted.slice(0, -1).map((o) => o.stdout)).toEqual(want);
    expect(durable.slice(0, -1).map((o) => o.stdout)).toEqual(want);
    expect(ordinary.slice(0, -1).map((o) => o.stdout)).toEqual(want);
    const t = summary(trusted);
    const o = summary(ordinary);
    expect(t).toMatchObject({ gate: 'in-guest', gateExits: 0, calls: 20, instances: [0] });
    // durability 'call' (the default): the guest kernel exits once per call, lock held, to commit.
    expect(summary(durable)).toMatchObject({ gate: 'in-guest', gateExits: 20, calls: 20 });
    expect(o.gate).toBe('exit');
    expect(o.gateExits).toBeGreaterThanOrEqual(40); // a call and a return exit per call
    expect(o.calls).toBe(20);
  });

  test('forks take the instances in turn, and calls from many forks into one instance stay serialized', async () => {
    const reqs = Array.from({ length: 40 }, () => 'slow_add:200000');
    const [two, one] = await Promise.all([
      jobs('pvm-native', [{ gate: { backends: { counter: { trusted: true, instances: 2 } }, size: 4, parallel: true }, requests: reqs }]),
      jobs('pvm-native', [{ gate: { backends: { counter: { trusted: true } }, size: 3, parallel: true }, requests: reqs }]),
    ]);
    expect(summary(two).instances.sort()).toEqual([0, 0, 1, 1]);
    expect(summary(two).calls).toBe(40);
    // One instance shared by three forks (three VMs, one lock word): no update lost, so the
    // answers are exactly 1..40 in some order.
    const answers = one.slice(0, -1).map((o) => Number(o.stdout)).sort((a, b) => a - b);
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  test('call events are still emitted while someone listens (one exit per call), with the entry names', async () => {
    const out = await jobs('pvm-native', [
      { gate: { backends: { counter: { trusted: true, durability: 'instance' } }, size: 1, listen: true }, requests: ['add:1', 'get', 'add:2'] },
    ]);
    const s = summary(out);
    expect(s.gate).toBe('in-guest');
    expect(s.events).toEqual(['counter.add', 'counter.get', 'counter.add']);
    expect(s.gateExits).toBe(3);
  });

  test('a caller with two trusted backends calls both in the guest; one untrusted backend sends all through the exit gate', async () => {
    const requests = ['add:3', 'other_add:10', 'add:4', 'other_add:1'];
    const [both, mixed] = await Promise.all([
      jobs('pvm-native', [{ gate: { backends: { counter: { trusted: true, durability: 'instance' }, other: { trusted: true, instances: 2, durability: 'instance' } }, size: 1 }, requests }]),
      jobs('pvm-native', [{ gate: { backends: { counter: { trusted: true }, other: {} }, size: 1 }, requests }]),
    ]);
    // Each backend keeps its own state: the two counters do not mix.
    expect(both.slice(0, 4).map((o) => o.stdout)).toEqual(['3', '10', '7', '11']);
    expect(mixed.slice(0, 4).map((o) => o.stdout)).toEqual(['3', '10', '7', '11']);
    expect(summary(both)).toMatchObject({ gate: 'in-guest', gateExits: 0 });
    expect(summary(mixed).gate).toBe('exit');
    expect(summary(mixed).gateExits).toBeGreaterThanOrEqual(8);
  });

  test('one trusted backend attached under two names is one backend: the same state through either name', async () => {
    const out = await jobs('pvm-native', [
      { gate: { backends: { counter: { trusted: true, durability: 'instance' }, other: { trusted: true, durability: 'instance' } }, size: 1, same: true }, requests: ['add:3', 'other_add:10', 'add:4'] },
    ]);
    expect(out.slice(0, 3).map((o) => o.stdout)).toEqual(['3', '13', '17']);
    expect(summary(out)).toMatchObject({ gate: 'in-guest', gateExits: 0, calls: 3 });
  });
});

describeNotPvm('pvm-native on a host without kvm_pvm', () => {
  test('is refused with KvmUnavailableError that says why', async () => {
    const r = await one('pvm-native', { run: probe, args: ['cs'] });
    expect(r.code).toBe('KvmUnavailable');
    expect(r.message).toMatch(/kvm_pvm/);
  });
});
