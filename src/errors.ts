// Every failure farcall reports is one of these classes. `code` is stable and matches the
// VMM's error codes; `details` carries structured facts (fault vector, address, signal).
import type { RunStats } from './run';

export type FarcallErrorCode =
  | 'KvmUnavailable' | 'KvmFailure' | 'NotElf' | 'WrongArch' | 'DynamicallyLinked' | 'CorruptElf'
  | 'TooBig' | 'GuestFault' | 'Timeout' | 'MemoryLimit' | 'OutputLimit' | 'BadState' | 'Protocol'
  | 'Internal' | 'WrongLayout' | 'AddonUnavailable' | 'InvalidArgument' | 'Closed' | 'RequestFailed' | 'BackendFault' | 'BackendUnavailable' | 'SchemaError'
  | 'Overloaded' | 'SnapshotCorrupt' | 'SnapshotIncompatible';

export interface FaultDetails {
  vector?: number;
  rip?: number;
  ripHex?: string;
  address?: number;
  addressHex?: string;
  errorCode?: number;
  signal?: number;
  [k: string]: unknown;
}

export class FarcallError extends Error {
  readonly code: FarcallErrorCode;
  readonly details: FaultDetails;
  /** Output the guest produced before it failed, when there was a guest. */
  stdout?: Buffer;
  stderr?: Buffer;
  /** runProgram: what the program did before it failed (system calls, unsupported ones included). */
  stats?: RunStats;
  constructor(code: FarcallErrorCode, message: string, details: FaultDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

export class KvmUnavailableError extends FarcallError {}
/** The native addon does not load (platform, missing build, old glibc); the message says how to fix it. */
export class AddonUnavailableError extends FarcallError {}
export class ProgramError extends FarcallError {}          // the program file is unusable
export class NotElfError extends ProgramError {}
export class WrongArchError extends ProgramError {}
export class DynamicProgramError extends ProgramError {}
export class CorruptElfError extends ProgramError {}
export class ProgramTooBigError extends ProgramError {}
export class GuestFaultError extends FarcallError {}
export class TimeoutError extends FarcallError {}
export class MemoryLimitError extends FarcallError {}
export class OutputLimitError extends FarcallError {}
export class ProtocolError extends FarcallError {}
export class InvalidArgumentError extends FarcallError {}
export class ClosedError extends FarcallError {}
export class RequestFailedError extends FarcallError {}
export class InternalError extends FarcallError {}
export class BackendFaultError extends FarcallError {}
export class BackendUnavailableError extends FarcallError {}
export class ConfigError extends InvalidArgumentError {}
/** Too much work waiting already (a full request queue): try again later; not the caller's fault. */
export class OverloadedError extends FarcallError {}
export class WrongLayoutError extends ProgramError {}
/** A snapshot file that cannot be used. */
export class SnapshotError extends FarcallError {}
/** Truncated, damaged (a checksum does not match), unreadable, or not a farcall snapshot. */
export class SnapshotCorruptError extends SnapshotError {}
/**
 * A sound snapshot this process cannot use: another format or farcall version, another CPU
 * feature set or entry mode, a backend snapshot given as a pool's (or the reverse), or backends
 * that do not match the ones the snapshot's master had.
 */
export class SnapshotIncompatibleError extends SnapshotError {}

/** An ioctl failed where it should not (the message names it and errno). */
export class KvmFailureError extends FarcallError {}
/** API misuse the VMM caught (e.g. attaching a backend after the VM ran). */
export class BadStateError extends InvalidArgumentError {}
/** A schema the code generator refuses. */
export class SchemaError extends FarcallError {}

// One class per code: the Record makes a code without a class a compile error, and
// test/errors.test.ts checks the codes against the VMM's list (native/vmm/error_codes.h).
export const errorClasses: Record<FarcallErrorCode, new (c: FarcallErrorCode, m: string, d?: FaultDetails) => FarcallError> = {
  KvmUnavailable: KvmUnavailableError,
  KvmFailure: KvmFailureError,
  BadState: BadStateError,
  Internal: InternalError,
  AddonUnavailable: AddonUnavailableError,
  SchemaError: SchemaError,
  NotElf: NotElfError,
  WrongArch: WrongArchError,
  DynamicallyLinked: DynamicProgramError,
  CorruptElf: CorruptElfError,
  TooBig: ProgramTooBigError,
  GuestFault: GuestFaultError,
  Timeout: TimeoutError,
  MemoryLimit: MemoryLimitError,
  OutputLimit: OutputLimitError,
  Protocol: ProtocolError,
  RequestFailed: RequestFailedError,
  InvalidArgument: InvalidArgumentError,
  Closed: ClosedError,
  BackendFault: BackendFaultError,
  BackendUnavailable: BackendUnavailableError,
  WrongLayout: WrongLayoutError,
  Overloaded: OverloadedError,
  SnapshotCorrupt: SnapshotCorruptError,
  SnapshotIncompatible: SnapshotIncompatibleError,
};

/** Converts an error thrown by the native addon into its typed class. */
export function fromNative(e: unknown): FarcallError {
  if (e instanceof FarcallError) return e;
  const n = e as { farcallCode?: string; message?: string; details?: FaultDetails; stdout?: Buffer; stderr?: Buffer };
  const code = (n && n.farcallCode) as FarcallErrorCode | undefined;
  if (!code) return new InternalError('Internal', String(n && n.message ? n.message : e));
  const Cls = errorClasses[code] ?? InternalError;
  const err = new Cls(code, n.message ?? code, n.details ?? {});
  if (n.stdout) err.stdout = n.stdout;
  if (n.stderr) err.stderr = n.stderr;
  return err;
}
