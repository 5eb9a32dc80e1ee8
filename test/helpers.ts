// Shared by the test suites: where the built guest programs are, and the KVM requirement.
import * as fs from 'fs';
import * as path from 'path';
import { vmStock } from '../src/vmstock';

export const root = path.resolve(__dirname, '..');
export const guest = (name: string): string => path.join(root, 'build', 'guests', name);

/**
 * How much slower than the host this run is: FARCALL_TIME_SCALE (set by scripts/hwkvm-lane.sh,
 * where the CPU is emulated), else 1. Time limits a test does not mean to hit, and upper bounds on
 * measured durations, are multiplied by it (`ms(…)`); jest.config.js scales the test timeout.
 */
export const timeScale = Math.max(1, Number(process.env.FARCALL_TIME_SCALE) || 1);
export const ms = (n: number): number => Math.round(n * timeScale);

/** True when /dev/kvm can be used. With FARCALL_REQUIRE_KVM=1 a missing KVM fails instead. */
export function kvmAvailable(): boolean {
  let ok = false;
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    ok = true;
  } catch {
    ok = false;
  }
  if (!ok && process.env.FARCALL_REQUIRE_KVM === '1')
    throw new Error('FARCALL_REQUIRE_KVM=1 but /dev/kvm is not usable on this machine');
  return ok;
}

/** `describe` for suites that need KVM: skipped without it, failing with FARCALL_REQUIRE_KVM=1. */
export const describeKvm: jest.Describe = (kvmAvailable() ? describe : describe.skip) as jest.Describe;

/** Open file descriptors of this process (for leak checks), retired VMs kept for reuse let go. */
export function openFds(): number {
  flushVmStock();
  return fs.readdirSync('/proc/self/fd').length;
}

function threadNames(): string[] {
  return fs.readdirSync('/proc/self/task').map((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  });
}

/** Threads of this process, not counting the kernel's per-VM workers (kvm-nx-lpage-recovery). */
export function threadCount(): number {
  return threadNames().filter((n) => !n.startsWith('kvm-')).length;
}

/**
 * Closes the retired VMs farcall keeps for reuse (src/vmstock.ts): they are kept on purpose, so
 * counts of VMs and fds that look for leaks are taken without them.
 */
export function flushVmStock(): void {
  const { max } = vmStock();
  vmStock({ max: 0 });
  vmStock({ max });
}

/** The kernel's per-VM worker threads: one per live VM that has run; a leaked VM keeps its own. */
export function kvmThreadCount(): number {
  flushVmStock();
  return threadNames().filter((n) => n.startsWith('kvm-')).length;
}

/** Resident set size in bytes. */
export function rssBytes(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The entry flavor VMs get without an `entry` option: FARCALL_ENTRY when set, else the host's
 * default (pvm-native on kvm_pvm once its self-check passes). Tests that expect a flavor-specific
 * outcome (which gate a trusted backend takes) ask this, not the environment.
 */
export function defaultEntry(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return (require('../src/native') as typeof import('../src/native')).native().doctor().entryMode ?? 'none';
  } catch {
    return 'none'; // no addon or no KVM: the suites that need one skip or fail on their own
  }
}
