// farcall doctor: what KVM this is, what it offers, and what is missing, with the fix.
import { execFileSync } from 'child_process';
import * as fs from 'fs';

import { FarcallError } from './errors';
import { native, NativeDoctor } from './native';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  /** 'pvm' (kvm_pvm: shadow paging, guests at hardware CPL 3), 'hardware' (VT-x / AMD-V), or 'unknown'. */
  flavor: string;
  /** How guest events reach the VMM on this host: 'trap-page' or 'out-stub'. */
  entryMode: string;
  /** The physical address width guest-physical addresses stay below (CPUID 0x80000008). */
  physBits: number;
  caps: Record<string, number | boolean>;
  /** How many more forks fit in this process's fd limit (raised to the hard limit when farcall loads). */
  forksThatFit: number;
  checks: DoctorCheck[];
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The name of group `gid` in an /etc/group text, if it has one. */
export function groupName(gid: number, groupText: string): string | undefined {
  for (const line of groupText.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && Number(id) === gid && id !== '') return name;
  }
  return undefined;
}

/**
 * How to let this user open /dev/kvm: join the group that owns it when that group exists and may
 * read and write it; otherwise no group grants access (e.g. root:root 0600), so make one.
 */
export function kvmAccessFix(dev: { gid: number; mode: number }, groupText: string): string {
  const group = groupName(dev.gid, groupText);
  if (dev.gid !== 0 && group && (dev.mode & 0o060) === 0o060)
    return `add the user to group ${group}, which owns /dev/kvm: sudo usermod -aG ${group} $USER, then log in again (or run as root)`;
  const owner = `${group ?? `gid ${dev.gid}`}, mode ${(dev.mode & 0o777).toString(8).padStart(4, '0')}`;
  return `no group may open /dev/kvm (${owner}); give it one: sudo groupadd -f --system kvm && sudo chgrp kvm /dev/kvm && ` +
    'sudo chmod 660 /dev/kvm && sudo usermod -aG kvm $USER, then log in again (a udev rule KERNEL=="kvm", GROUP="kvm", ' +
    'MODE="0660" keeps it after a reboot); or run as root';
}

/** /dev/kvm as the kernel shows it, for when the addon cannot probe it. */
function probeKvm(): NativeDoctor {
  if (!fs.existsSync('/dev/kvm')) return { ok: false, problem: '/dev/kvm does not exist: load a KVM module (kvm_intel, kvm_amd or kvm_pvm)' };
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    return { ok: true, problem: '' };
  } catch {
    return { ok: false, problem: '/dev/kvm is not accessible to this user' };
  }
}

function kvmFix(problem: string): string {
  if (!/not accessible/.test(problem)) return problem;
  let groups = '';
  try {
    groups = fs.readFileSync('/etc/group', 'utf8');
  } catch {
    // no /etc/group: every gid is shown as a number
  }
  return kvmAccessFix(fs.statSync('/dev/kvm'), groups);
}

export function doctor(): DoctorReport {
  const checks: DoctorCheck[] = [];
  let d: NativeDoctor;
  try {
    d = native().doctor();
    checks.push({ name: 'addon', ok: true, detail: 'the native addon loads' });
  } catch (e) {
    const fix = e instanceof FarcallError && typeof e.details.fix === 'string' ? e.details.fix : undefined;
    checks.push({ name: 'addon', ok: false, detail: (e as Error).message, fix });
    d = probeKvm();
  }
  checks.push({
    name: '/dev/kvm',
    ok: d.ok,
    detail: d.ok ? 'usable' : d.problem,
    fix: d.ok ? undefined : kvmFix(d.problem),
  });
  if (d.ok && d.caps) {
    for (const [cap, why] of [['syncRegs', 'registers shared through kvm_run'], ['manualDirtyLog', 'fork reset'], ['immediateExit', 'timeouts']] as const)
      checks.push({ name: cap, ok: Boolean(d.caps[cap]), detail: why });
  }
  const tools: Array<[string, string, string]> = [
    ['gcc', 'builds glibc guest programs', 'apt-get install -y build-essential'],
    ['musl-gcc', 'builds musl guest programs', 'apt-get install -y musl-tools'],
    ['cmake', 'builds guest programs (farcall_add_program)', 'apt-get install -y cmake'],
    ['flatc', 'IDL code generation', 'apt-get install -y flatbuffers-compiler libflatbuffers-dev'],
  ];
  for (const [cmd, why, fix] of tools) {
    const ok = hasCommand(cmd);
    checks.push({ name: cmd, ok, detail: ok ? why : `missing (${why})`, fix: ok ? undefined : fix });
  }
  const l = d.limits;
  if (l) checks.push({
    name: 'forks that fit',
    ok: l.forksThatFit >= 1000,
    detail: `${l.forksThatFit} more forks fit in the fd limit (${l.fdsOpen} of ${l.fdLimit} fds open, ${l.fdsPerFork} per fork); ` +
      `fork work runs on ${l.threads} threads (FARCALL_THREADS)`,
    fix: l.forksThatFit >= 1000 ? undefined : `raise the hard fd limit (ulimit -Hn, LimitNOFILE=) to ${l.fdsOpen + 2 * 4096} or more`,
  });
  if (d.vmStock) checks.push({
    name: 'VM reuse',
    ok: true,
    detail: d.vmStock.max > 0
      ? `up to ${d.vmStock.max} retired VMs kept for new forks (FARCALL_VM_STOCK); ${d.vmStock.created} created, ${d.vmStock.reused} reused, ${d.vmStock.idle} waiting`
      : 'off (FARCALL_VM_STOCK=0): every fork asks KVM for a new VM',
  });
  const pvmNative = '/sys/module/kvm_pvm/parameters/pvm_native';
  if (fs.existsSync(pvmNative)) {
    checks.push({ name: 'kvm_pvm', ok: true, detail: `pvm_native=${fs.readFileSync(pvmNative, 'utf8').trim()}` });
    const native = d.entryMode === 'pvm-native';
    if (d.entryFallback) checks.push({ name: 'pvm-native', ok: true, detail: `default is trap-page: ${d.entryFallback}` });
    checks.push({
      name: 'in-guest gate',
      ok: true,
      detail: native
        ? 'on: calls from pools whose backends are all trusted take no VM exit'
        : 'off: use entry pvm-native (FARCALL_ENTRY=pvm-native) to call trusted backends without VM exits (docs/pvm.md)',
    });
  }
  if (d.entryError) checks.push({ name: 'FARCALL_ENTRY', ok: false, detail: d.entryError, fix: 'unset it or use trap-page, out-stub or pvm-native' });
  return {
    ok: checks.every((c) => c.ok || c.name === 'flatc' || c.name === 'musl-gcc' || c.name === 'forks that fit'),
    flavor: d.flavor ?? 'unknown',
    entryMode: d.entryMode ?? 'none',
    physBits: d.physBits ?? 0,
    caps: d.caps ?? {},
    forksThatFit: d.limits?.forksThatFit ?? 0,
    checks,
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [`KVM flavor: ${r.flavor}   entry mode: ${r.entryMode}   physical address bits: ${r.physBits}`];
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(16)} ${c.detail}${c.fix ? `\n       fix: ${c.fix}` : ''}`);
  lines.push(r.ok ? 'farcall is ready.' : 'farcall is not ready: see the fixes above.');
  return lines.join('\n');
}
