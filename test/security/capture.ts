// The CPU-state record test/guests/hostile_req.c answers ("probe": a request's start, "entry":
// the program's entry point), field by field, so that a mismatch names the field.
import { createHash } from 'crypto';

export function decodeCapture(b: Buffer): Record<string, string> {
  const names = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rflags', 'fs', 'gs'];
  const out: Record<string, string> = {};
  names.forEach((n, i) => (out[n] = b.readBigUInt64LE(8 * i).toString(16)));
  const x = b.subarray(192);
  out.fcw = x.readUInt16LE(0).toString(16);
  out.x87tags = x.readUInt8(4).toString(16);
  out.mxcsr = x.readUInt32LE(24).toString(16);
  out.x87regs = x.subarray(32, 160).toString('hex');
  out.xmm = x.subarray(160, 416).toString('hex');
  // Not compared: XSTATE_BV, the CPU's "component in use" bits. They follow KVM's and the CPU's
  // own bookkeeping (e.g. a host-side FPU reload on the first write fault to a page), not what a
  // request did; every register they describe is compared above and below (docs/architecture.md).
  out.extended = createHash('sha256').update(x.subarray(576, 8192)).digest('hex');
  return out;
}
