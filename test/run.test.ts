// runProgram end to end on real KVM (issue 2's "Show" list): static programs in C and C++,
// argv/env/stdin, limits (time, memory, output), unsupported system calls, every bad-ELF error,
// guest faults, the CLI, and 100 runs back to back without leaks.
import { execFile } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import {
  CorruptElfError,
  DynamicProgramError,
  FarcallError,
  GuestFaultError,
  MemoryLimitError,
  NotElfError,
  OutputLimitError,
  ProgramError,
  ProgramTooBigError,
  TimeoutError,
  WrongArchError,
} from '../src/errors';
import { runProgram, RunOptions } from '../src/run';
import { describeKvm, guest, ms, openFds, root, rssBytes, threadCount } from './helpers';

const KERNEL_VA = 0xffffff8000000000;

/** Runs a program that must fail; returns the error (fails the test if it succeeds). */
async function failure(program: string | Buffer, opts: RunOptions = {}): Promise<FarcallError> {
  try {
    const r = await runProgram(program, opts);
    throw new Error(`expected a failure, got exit code ${r.exitCode} and stdout ${JSON.stringify(r.stdout.toString())}`);
  } catch (e) {
    if (!(e instanceof FarcallError)) throw e;
    return e;
  }
}

const read = (name: string) => fs.readFileSync(guest(name));

// The flavor VMs get here when no option names one (FARCALL_ENTRY, else the host's default).
const doctorEntry = async (): Promise<string> => (await import('../src')).doctor().entryMode;

describeKvm('runProgram: static programs', () => {
  test.each([
    ['hello_glibc', 'glibc static'],
    ['hello_glibc_pie', 'glibc static-PIE'],
    ['hello_musl', 'musl static'],
  ])('%s (%s) prints, writes stderr and returns its exit code', async (name) => {
    const r = await runProgram(guest(name));
    expect(r.exitCode).toBe(7);
    expect(r.stdout.toString()).toBe(`hello from ${guest(name)} (argc=1)\n`);
    expect(r.stderr.toString()).toBe('to stderr\n');
    // write/writev (1/20) and exit_group (231) were counted, and each syscall was one exit.
    const writes = (r.stats.syscalls[1] ?? 0) + (r.stats.syscalls[20] ?? 0);
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(r.stats.syscalls[231]).toBe(1);
    const total = Object.values(r.stats.syscalls).reduce((a, b) => a + b, 0);
    expect(r.stats.exits.syscall).toBe(total);
    expect(r.stats.timeUs).toBeGreaterThan(0);
    expect(r.stats.enomem).toBe(0);
  });

  test('static-PIE runs from a Buffer with argv0 and arguments', async () => {
    const r = await runProgram(read('hello_glibc_pie'), { argv0: 'pie', args: ['x', 'y'] });
    expect(r.stdout.toString()).toBe('hello from pie (argc=3)\n');
  });

  test('C++: iostream, exceptions and static constructors', async () => {
    const r = await runProgram(guest('hello_cxx'));
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toBe('hello from C++ static-ctor caught=2 size=5\nstatic-ctor\ntoo big: 3\ntoo big: 4\n');
  });

  test('argv, env and stdin round trip', async () => {
    const input = Buffer.concat([Buffer.from('line one\nline two\n'), crypto.randomBytes(3000).map((b) => 0x41 + (b % 26))]);
    const r = await runProgram(guest('echo_io'), {
      argv0: 'echo',
      args: ['a b', '', 'ünïcode'],
      env: { FARCALL_TEST: 'v=1 2', OTHER: 'x' },
      stdin: input,
    });
    expect(r.exitCode).toBe(0);
    const expected = `arg[0]=echo\narg[1]=a b\narg[2]=\narg[3]=ünïcode\nenv FARCALL_TEST=v=1 2\n${input.toString()}\nstdin bytes=${input.length}\n`;
    expect(r.stdout.toString()).toBe(expected);
    // read(0, ...) was answered until end of input: at least one full read and one returning 0.
    expect(r.stats.syscalls[0]).toBeGreaterThanOrEqual(2);
  });

  test('env as "K=V" strings, and no environment leaks from the host', async () => {
    process.env.FARCALL_TEST = 'from-host';
    try {
      expect((await runProgram(guest('echo_io'))).stdout.toString()).toContain('env FARCALL_TEST=(unset)\n');
      const r = await runProgram(guest('echo_io'), { env: ['FARCALL_TEST=list'] });
      expect(r.stdout.toString()).toContain('env FARCALL_TEST=list\n');
      expect(r.stdout.toString()).toContain('stdin bytes=0\n');
    } finally {
      delete process.env.FARCALL_TEST;
    }
  });

  test('a malloc-heavy program keeps its data intact', async () => {
    const r = await runProgram(guest('malloc_heavy'), { timeoutMs: ms(30000) });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toMatch(/^ok checksum=\d+\n$/);
    // It grew and shrank memory through the VMM: brk and mmap/munmap were all used.
    expect(r.stats.syscalls[12]).toBeGreaterThan(10);
    expect(r.stats.syscalls[9]).toBeGreaterThan(0);
    expect(r.stats.syscalls[11]).toBeGreaterThan(0);
  });

  test('the same program gives the same checksum twice (fresh VM each time)', async () => {
    const a = await runProgram(guest('malloc_heavy'), { timeoutMs: ms(30000) });
    const b = await runProgram(guest('malloc_heavy'), { timeoutMs: ms(30000) });
    expect(a.stdout.toString()).toBe(b.stdout.toString());
  });
});

describeKvm('runProgram: limits', () => {
  test('an infinite loop is stopped by the timeout, and the next run works', async () => {
    const t0 = Date.now();
    const e = await failure(guest('spin'), { timeoutMs: 300 });
    const took = Date.now() - t0;
    expect(e).toBeInstanceOf(TimeoutError);
    expect(e.code).toBe('Timeout');
    expect(e.message).toMatch(/timed out/);
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(ms(3000));
    const r = await runProgram(guest('hello_musl'));
    expect(r.exitCode).toBe(7);
  });

  test('two timeouts in parallel are both stopped, each near its own deadline', async () => {
    const t0 = Date.now();
    const [a, b] = await Promise.all([
      failure(guest('spin'), { timeoutMs: 200 }).then((e) => [e, Date.now() - t0] as const),
      failure(guest('spin'), { timeoutMs: 600 }).then((e) => [e, Date.now() - t0] as const),
    ]);
    expect(a[0]).toBeInstanceOf(TimeoutError);
    expect(b[0]).toBeInstanceOf(TimeoutError);
    expect(a[1]).toBeLessThan(b[1]);
    expect(b[1]).toBeGreaterThanOrEqual(590);
  });

  test('allocation past the memory limit fails inside the guest with ENOMEM', async () => {
    const r = await runProgram(guest('alloc_loop'), { memoryMiB: 32 });
    expect(r.exitCode).toBe(0);
    const m = /^ENOMEM after (\d+) MiB\n$/.exec(r.stdout.toString());
    expect(m).not.toBeNull();
    const mib = Number(m![1]);
    expect(mib).toBeGreaterThan(8);
    expect(mib).toBeLessThanOrEqual(32); // what it touched is charged, checked when it asks for more (docs/threads.md)
    expect(r.stats.enomem).toBeGreaterThan(0);
  });

  test('more memory lets the same program allocate more', async () => {
    const small = await runProgram(guest('alloc_loop'), { memoryMiB: 32 });
    const big = await runProgram(guest('alloc_loop'), { memoryMiB: 96 });
    const n = (s: Buffer) => Number(/after (\d+) MiB/.exec(s.toString())![1]);
    expect(n(big.stdout)).toBeGreaterThan(n(small.stdout) + 40);
    expect(n(big.stdout)).toBeLessThan(96);
  });

  test('a program that aborts after ENOMEM gives MemoryLimitError', async () => {
    const e = await failure(guest('alloc_loop'), { memoryMiB: 32, args: ['abort'] });
    expect(e).toBeInstanceOf(MemoryLimitError);
    expect(e.code).toBe('MemoryLimit');
    expect(e.message).toMatch(/32 MiB/);
    expect(e.details.signal).toBe(6);
  });

  test('a program printing forever is stopped by the output limit', async () => {
    const e = await failure(guest('flood'), { outputLimit: 64 * 1024, timeoutMs: ms(10000) });
    expect(e).toBeInstanceOf(OutputLimitError);
    expect(e.message).toMatch(/stdout passed the output limit of 65536 bytes/);
    expect(e.stdout).toBeDefined();
    expect(e.stdout!.length).toBe(64 * 1024);
    expect(e.stdout!.subarray(0, 12).toString()).toBe('flood flood ');
  });

  test('invalid limits are refused before any VM runs', async () => {
    await expect(runProgram(guest('hello_musl'), { memoryMiB: 3 })).rejects.toThrow(/memoryMiB/);
    await expect(runProgram(guest('hello_musl'), { timeoutMs: 0 })).rejects.toThrow(/timeoutMs/);
  });
});

describeKvm('runProgram: unsupported system calls', () => {
  test('answer ENOSYS and are counted by number', async () => {
    const r = await runProgram(guest('unsupported'));
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toBe('socket=-1 errno=38 fork=-1 errno=38 again=-1 enosys=38\n');
    expect(r.stats.unsupportedSyscalls[41]).toBe(2); // socket
    expect(r.stats.unsupportedSyscalls[57]).toBe(1); // fork
    expect(r.stats.syscalls[41]).toBe(2);
    expect(r.stats.syscalls[57]).toBe(1);
    // Supported calls are not in the unsupported list.
    expect(r.stats.unsupportedSyscalls[1] ?? r.stats.unsupportedSyscalls[20]).toBeUndefined();
    expect(r.stats.unsupportedSyscalls[231]).toBeUndefined();
  });

  test('numbers a guest invents are counted in one bucket, not one counter each', async () => {
    const r = await runProgram(guest('syscall_spray'));
    expect(r.stdout.toString()).toBe('done\n');
    expect(r.stats.unsupportedSyscalls[0xffffffff]).toBe(200);
    expect(r.stats.unsupportedSyscalls[41]).toBe(1); // socket keeps its own counter
    expect(Object.keys(r.stats.unsupportedSyscalls).length).toBe(2);
  });
});

describeKvm('runProgram: bad programs give typed errors', () => {
  const hello = () => read('hello_glibc');

  test('random bytes: NotElfError', async () => {
    const junk = crypto.randomBytes(4096);
    junk[0] = 0;
    const e = await failure(junk);
    expect(e).toBeInstanceOf(NotElfError);
    expect(e).toBeInstanceOf(ProgramError);
    expect(e.code).toBe('NotElf');
    expect(e.message).toMatch(/not an ELF/);
  });

  test('a text file: NotElfError', async () => {
    const e = await failure(path.join(root, 'test', 'guests', 'hello.c'));
    expect(e).toBeInstanceOf(NotElfError);
  });

  test('an empty file: NotElfError', async () => {
    expect(await failure(Buffer.alloc(0))).toBeInstanceOf(NotElfError);
  });

  test('a 32-bit ELF: WrongArchError', async () => {
    const b = hello();
    b[4] = 1; // EI_CLASS = ELFCLASS32
    const e = await failure(b);
    expect(e).toBeInstanceOf(WrongArchError);
    expect(e.message).toMatch(/32-bit/);
  });

  test('another machine (aarch64): WrongArchError', async () => {
    const b = hello();
    b.writeUInt16LE(183, 18); // e_machine = EM_AARCH64
    const e = await failure(b);
    expect(e).toBeInstanceOf(WrongArchError);
    expect(e.message).toMatch(/183/);
  });

  test('a dynamically linked program: DynamicProgramError that says how to link statically', async () => {
    const e = await failure(guest('hello_dynamic'));
    expect(e).toBeInstanceOf(DynamicProgramError);
    expect(e.message).toMatch(/dynamically linked/);
    expect(e.message).toMatch(/-static/);
  });

  test('a truncated program: CorruptElfError', async () => {
    const e = await failure(hello().subarray(0, 2000));
    expect(e).toBeInstanceOf(CorruptElfError);
    expect(e.message).toMatch(/truncated/);
  });

  test('cut inside the ELF header: CorruptElfError', async () => {
    expect(await failure(hello().subarray(0, 40))).toBeInstanceOf(CorruptElfError);
  });

  test('corrupt program headers: CorruptElfError', async () => {
    const badSize = hello();
    badSize.writeUInt16LE(40, 54); // e_phentsize
    expect(await failure(badSize)).toBeInstanceOf(CorruptElfError);

    const pastEnd = hello();
    pastEnd.writeBigUInt64LE(BigInt(pastEnd.length - 8), 32); // e_phoff near the end of the file
    const e2 = await failure(pastEnd);
    expect(e2).toBeInstanceOf(CorruptElfError);
    expect(e2.message).toMatch(/program headers/);

    // A PT_LOAD whose file size is larger than its memory size.
    const seg = hello();
    const phoff = Number(seg.readBigUInt64LE(32));
    const phnum = seg.readUInt16LE(56);
    let patched = false;
    for (let i = 0; i < phnum && !patched; i++) {
      const p = phoff + i * 56;
      if (seg.readUInt32LE(p) === 1 /* PT_LOAD */) {
        seg.writeBigUInt64LE(seg.readBigUInt64LE(p + 40) + 0x100000n, p + 32); // p_filesz > p_memsz
        patched = true;
      }
    }
    expect(patched).toBe(true);
    expect(await failure(seg)).toBeInstanceOf(CorruptElfError);

    const entry = hello();
    entry.writeBigUInt64LE(0x10n, 24); // e_entry outside every segment
    const e4 = await failure(entry);
    expect(e4).toBeInstanceOf(CorruptElfError);
    expect(e4.message).toMatch(/entry point/);
  });

  test('too big for the memory limit: ProgramTooBigError', async () => {
    const e = await failure(guest('hello_glibc'), { memoryMiB: 4 });
    expect(e).toBeInstanceOf(ProgramTooBigError);
    expect(e.message).toMatch(/memoryMiB/);
    // A 48 MiB bss runs with 64 MiB and is too big for 32 MiB.
    const ok = await runProgram(guest('bigbss'));
    expect(ok.stdout.toString()).toMatch(/^bss ok 3 at /);
    expect(await failure(guest('bigbss'), { memoryMiB: 32 })).toBeInstanceOf(ProgramTooBigError);
  });

  test('a missing file is an InvalidArgument error, not a crash', async () => {
    const e = await failure(path.join(root, 'build', 'guests', 'does-not-exist'));
    expect(e.code).toBe('InvalidArgument');
    expect(e.message).toMatch(/does-not-exist/);
  });
});

describeKvm('runProgram: guest faults', () => {
  test('null write: #PF (vector 14) with the address and a user write error code', async () => {
    const e = await failure(guest('crash'), { args: ['null'] });
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.details.vector).toBe(14);
    expect(e.details.address).toBe(0);
    expect(e.details.errorCode! & 0x6).toBe(0x6); // write, user
    expect(e.details.errorCode! & 0x1).toBe(0); // not present
    expect(e.details.rip).toBeGreaterThanOrEqual(0x400000);
    expect(e.details.rip).toBeLessThan(0x500000);
    expect(e.message).toMatch(/#PF page fault at rip 0x4[0-9a-f]+ accessing 0x0/);
  });

  test('ud2: #UD (vector 6)', async () => {
    const e = await failure(guest('crash'), { args: ['ud2'] });
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.details.vector).toBe(6);
    expect(e.message).toMatch(/#UD/);
  });

  test('divide by zero: #DE (vector 0)', async () => {
    const e = await failure(guest('crash'), { args: ['div'] });
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.details.vector).toBe(0);
    expect(e.message).toMatch(/#DE/);
  });

  test('reading supervisor memory: #PF at the kernel address, present + user', async () => {
    const e = await failure(guest('crash'), { args: ['kernel'] });
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.details.vector).toBe(14);
    expect(e.details.addressHex).toBe('0xffffff8000000000');
    expect(e.details.address).toBe(KERNEL_VA);
    // present (protection), user. Under pvm-native, kvm_pvm reserves the upper half to guest
    // supervisor mode and reports a user access there as not present (docs/pvm.md).
    const pvmNative = (await doctorEntry()) === 'pvm-native';
    expect(e.details.errorCode! & 0x5).toBe(pvmNative ? 0x4 : 0x5);
    expect(e.details.errorCode! & 0x2).toBe(0); // a read
  });

  test('a wild jump: #PF at the jump target', async () => {
    const e = await failure(guest('crash'), { args: ['wild'] });
    expect(e.details.vector).toBe(14);
    expect(e.details.addressHex).toBe('0x7ff000000000');
    expect(e.details.ripHex).toBe('0x7ff000000000');
    expect(e.details.errorCode! & 0x10).toBe(0x10); // instruction fetch
  });

  test('a user jump into the trap page is not taken for the exception it impersonates', async () => {
    // crash trap jumps to trap page + 0x100 + 8*14: where a real #PF would be delivered.
    const e = await failure(guest('crash'), { args: ['trap'] });
    expect(e).toBeInstanceOf(GuestFaultError);
    expect(e.details.vector).toBeUndefined();
    expect(e.details.address).toBeUndefined();
    expect(e.message).toMatch(/trap page/);
    expect(e.message).not.toMatch(/#PF|page fault/);
  });

  test('after every kind of fault the next program runs normally', async () => {
    for (const how of ['null', 'ud2', 'div', 'kernel', 'wild', 'trap']) await failure(guest('crash'), { args: [how] });
    expect((await runProgram(guest('hello_musl'))).exitCode).toBe(7);
  });
});

describeKvm('CLI', () => {
  const cli = path.join(root, 'dist', 'src', 'cli.js');
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [cli, ...args], { timeout: ms(60000) }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });

  test('farcall run passes arguments and environment and returns the exit code', async () => {
    const r = await run(['run', '-e', 'FARCALL_TEST=cli', '--', guest('echo_io'), 'one', 'two']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('arg[1]=one\narg[2]=two\n');
    expect(r.stdout).toContain('env FARCALL_TEST=cli\n');
    const h = await run(['run', guest('hello_musl')]);
    expect(h.code).toBe(7);
    expect(h.stdout).toBe(`hello from ${guest('hello_musl')} (argc=1)\n`);
    expect(h.stderr).toBe('to stderr\n');
  });

  test('farcall run reports a typed error and exits 1', async () => {
    const r = await run(['run', guest('hello_dynamic')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/DynamicProgramError: run: program \S*hello_dynamic: dynamically linked/);
    const t = await run(['run', '--timeout', '200', guest('spin')]);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/TimeoutError/);
  });

  test('farcall doctor --json names the KVM flavor and entry mode', async () => {
    const r = await run(['doctor', '--json']);
    const d = JSON.parse(r.stdout);
    expect(r.code).toBe(d.ok ? 0 : 1);
    const pvm = fs.existsSync('/sys/module/kvm_pvm');
    expect(d.flavor).toBe(pvm ? 'pvm' : 'hardware');
    expect(['trap-page', 'out-stub', 'pvm-native']).toContain(d.entryMode);
    // The default on kvm_pvm is pvm-native once its self-check passes (docs/entry.md).
    if (pvm && !process.env.FARCALL_ENTRY) expect(d.entryMode).toBe('pvm-native');
    expect(d.caps.syncRegs).toBe(true);
    expect(Array.isArray(d.checks)).toBe(true);
    expect(d.checks.find((c: { name: string }) => c.name === '/dev/kvm').ok).toBe(true);
    const gate = d.checks.find((c: { name: string }) => c.name === 'in-guest gate');
    if (pvm) expect(gate.detail).toMatch(d.entryMode === 'pvm-native' ? /^on:/ : /^off:/);
    else expect(gate).toBeUndefined();
  });
});

describeKvm('100 programs back to back', () => {
  test('leak no file descriptors, threads or memory', async () => {
    const progs: Array<[string, RunOptions, number | string]> = [
      ['hello_musl', {}, 7],
      ['hello_glibc', {}, 7],
      ['echo_io', { args: ['x'], stdin: 'abc' }, 0],
      ['crash', { args: ['null'] }, 'GuestFault'],
      ['unsupported', {}, 0],
    ];
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const [name, opts, want] = progs[i % progs.length];
        const got = await runProgram(guest(name), opts).then(
          (r) => r.exitCode,
          (e: FarcallError) => e.code,
        );
        expect(got).toBe(want);
      }
    };
    // One timeout in the warm-up too, so its path is covered by the same counts.
    await failure(guest('spin'), { timeoutMs: 100 });
    await round(20);
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const fds0 = openFds();
    const threads0 = threadCount();
    const rss0 = rssBytes();
    await round(100);
    await failure(guest('spin'), { timeoutMs: 100 });
    gc?.();
    const fds1 = openFds();
    const threads1 = threadCount();
    const rss1 = rssBytes();
    // Each VM holds at least 4 fds (vm, vcpu, 2 memfds) and a thread while it runs: a leak of
    // any of them per run would show as +100 here.
    expect(fds1 - fds0).toBeLessThanOrEqual(2);
    // The watchdog and libuv's pool already exist after the warm-up; allow one straggler.
    expect(threads1 - threads0).toBeLessThanOrEqual(1);
    // Every VM has 64 MiB of guest RAM and touches a few MiB of it: keeping any would add far more.
    expect(rss1 - rss0).toBeLessThan(20 * 1024 * 1024);
  });
});
