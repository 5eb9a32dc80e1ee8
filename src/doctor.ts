// farcall doctor: what KVM this is, what it offers, and what is missing, with the fix.
import { execFileSync } from 'child_process';
import * as fs from 'fs';

import { native } from './native';

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

export function doctor(): DoctorReport {
  const d = native().doctor();
  const checks: DoctorCheck[] = [];
  checks.push({
    name: '/dev/kvm',
    ok: d.ok,
    detail: d.ok ? 'usable' : d.problem,
    fix: d.ok ? undefined : d.problem,
  });
  if (d.ok && d.caps) {
    for (const [cap, why] of [['syncRegs', 'registers shared through kvm_run'], ['manualDirtyLog', 'fork reset'], ['immediateExit', 'timeouts']] as const)
      checks.push({ name: cap, ok: Boolean(d.caps[cap]), detail: why });
  }
  const tools: Array<[string, string, string]> = [
    ['gcc', 'builds glibc guest programs', 'apt-get install -y build-essential'],
    ['musl-gcc', 'builds musl guest programs', 'apt-get install -y musl-tools'],
    ['cmake', 'builds the addon and guests', 'apt-get install -y cmake'],
    ['flatc', 'IDL code generation', 'apt-get install -y flatbuffers-compiler libflatbuffers-dev'],
  ];
  for (const [cmd, why, fix] of tools) {
    const ok = hasCommand(cmd);
    checks.push({ name: cmd, ok, detail: ok ? why : `missing (${why})`, fix: ok ? undefined : fix });
  }
  const l = d.limits;
  checks.push({
    name: 'forks that fit',
    ok: l.forksThatFit >= 1000,
    detail: `${l.forksThatFit} more forks fit in the fd limit (${l.fdsOpen} of ${l.fdLimit} fds open, ${l.fdsPerFork} per fork); ` +
      `fork work runs on ${l.threads} threads (FARCALL_THREADS)`,
    fix: l.forksThatFit >= 1000 ? undefined : `raise the hard fd limit (ulimit -Hn, LimitNOFILE=) to ${l.fdsOpen + 2 * 4096} or more`,
  });
  const pvmNative = '/sys/module/kvm_pvm/parameters/pvm_native';
  if (fs.existsSync(pvmNative)) {
    checks.push({ name: 'kvm_pvm', ok: true, detail: `pvm_native=${fs.readFileSync(pvmNative, 'utf8').trim()}` });
    const native = d.entryMode === 'pvm-native';
    checks.push({
      name: 'in-guest gate',
      ok: true,
      detail: native
        ? 'on: calls from pools whose backends are all trusted take no VM exit'
        : 'off: set FARCALL_ENTRY=pvm-native to call trusted backends without VM exits (docs/pvm.md)',
    });
  }
  return {
    ok: checks.every((c) => c.ok || c.name === 'flatc' || c.name === 'musl-gcc' || c.name === 'forks that fit'),
    flavor: d.flavor ?? 'unknown',
    entryMode: d.entryMode ?? 'none',
    caps: d.caps ?? {},
    forksThatFit: d.limits.forksThatFit,
    checks,
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [`KVM flavor: ${r.flavor}   entry mode: ${r.entryMode}`];
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(16)} ${c.detail}${c.fix ? `\n       fix: ${c.fix}` : ''}`);
  lines.push(r.ok ? 'farcall is ready.' : 'farcall is not ready: see the fixes above.');
  return lines.join('\n');
}
