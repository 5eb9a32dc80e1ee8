// The guest-physical layout follows the CPU's physical address width (CPUID 0x80000008, 39 to 52
// bits on real CPUs): backend memory is placed below it, or refused with a clear error. A GPA at or
// above the width cannot be a memslot (KVM_SET_USER_MEMORY_REGION fails with EINVAL).
import * as fs from 'fs';

import { Backend } from '../src';
import { doctor } from '../src/doctor';
import { native } from '../src/native';
import { describeKvm, guest } from './helpers';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const BASE = 128 * GiB; // layout.h kBackendGpaBase: everything else sits below

/** Ranges [gpa, gpa + size) as planned for `sizes`, checked to lie in [BASE, 2^bits) and not overlap. */
function expectPlaced(bits: number, sizes: number[]): number[] {
  const plan = native().gpaPlan(bits, sizes);
  expect(plan).toHaveLength(sizes.length);
  const ranges = plan.map((gpa, i) => [gpa, gpa + sizes[i]]).sort((a, b) => a[0] - b[0]);
  for (const [i, [lo, hi]] of ranges.entries()) {
    expect(lo).toBeGreaterThanOrEqual(BASE);
    expect(lo % (2 * MiB)).toBe(0);
    expect(hi).toBeLessThanOrEqual(2 ** bits);
    if (i > 0) expect(lo).toBeGreaterThanOrEqual(ranges[i - 1][1]);
  }
  return plan;
}

describe('guest-physical layout for a given physical address width', () => {
  test('39 bits: backend memory is placed below 512 GiB, and what does not fit is refused', () => {
    expectPlaced(39, Array(64).fill(64 * MiB));
    // 16 GiB instances (the largest): (512 - 128) / 16 = 24 fit, the last one ending at the top.
    const big = expectPlaced(39, Array(24).fill(16 * GiB));
    expect(Math.max(...big)).toBe(2 ** 39 - 16 * GiB);
    let err: (Error & { farcallCode?: string }) | undefined;
    try {
      native().gpaPlan(39, Array(25).fill(16 * GiB));
    } catch (e) {
      err = e as Error;
    }
    expect(err?.farcallCode).toBe('BadState');
    expect(err?.message).toMatch(/39-bit physical address width/);
  });

  test('wider CPUs get more room: what 39 bits refuses fits at 40 and 48', () => {
    expectPlaced(40, Array(25).fill(16 * GiB));
    expectPlaced(48, Array(200).fill(16 * GiB));
  });

  test('odd sizes are rounded to 2 MiB, so ranges stay aligned', () => {
    const plan = expectPlaced(39, [1, 3 * MiB, 5 * MiB + 1, 2 * MiB]);
    expect(plan).toEqual([BASE, BASE + 2 * MiB, BASE + 6 * MiB, BASE + 12 * MiB]);
  });
});

describeKvm('guest-physical layout on this host', () => {
  test('doctor reports the width this host allows, and backends load and answer below it', async () => {
    const bits = doctor().physBits;
    // The host CPU's own width bounds it (the guests' CPUID may only lower it).
    const m = /address sizes\s*:\s*(\d+) bits physical/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    expect(bits).toBeGreaterThanOrEqual(38);
    if (m) expect(bits).toBeLessThanOrEqual(Number(m[1]));
    const b = await Backend.load(guest('counter_backend'), { instances: 4, memoryMiB: 16 });
    try {
      // Every instance answers: each one's memory is mapped at its own place below the width.
      for (let i = 0; i < 4; i++) expect((await b.call('host_echo', `n${i}`)).toString()).toBe(`echo:n${i}`);
      expect(b.stats().instances.every((x) => x.calls > 0)).toBe(true);
    } finally {
      b.close();
    }
  });
});
