// farcall RPC runtime for TypeScript: what generated host stubs share. Copied verbatim into
// each generated ts/ folder by farcall-gen (it depends only on 'farcall/flatbuffers' and flatc's
// code for idl/farcall.fbs); do not edit the copy.
import * as flatbuffers from 'farcall/flatbuffers';

import { Error as ErrorTable, ServiceIdentity, Status } from './farcall_generated';

/** What a stub calls: a farcall Backend (or anything with the same callRaw). */
export interface CallTarget {
  readonly entries?: readonly string[];
  callRaw(entry: string, input: Uint8Array, opts?: { outCap?: number; timeoutMs?: number }): Promise<{ result: number; output: Buffer }>;
}

export interface StubOptions {
  /** Room for each reply, in bytes. Default 64 KiB. */
  outCap?: number;
  /** Per-call limit. Default: the backend's. */
  timeoutMs?: number;
}

export interface MethodInfo {
  name: string;
  entry: string;
  hash: bigint;
  request: string;
  response: string;
}

export interface ServiceInfo {
  service: string;
  hash: bigint;
  idEntry: string;
  schema: string;
  generator: string;
  methods: MethodInfo[];
}

const STATUS_NAMES: Record<number, string> = {
  1: 'BadRequest', 2: 'BadPointer', 3: 'ReplyTooLarge', 4: 'Failed', 5: 'Unimplemented',
};

const GATE_ERRORS: Record<number, string> = {
  [-1001]: 'the backend crashed during the call',
  [-1002]: 'the backend timed out',
  [-1003]: 'the backend was busy',
  [-1004]: 'the backend exited during the call',
};

/** A call that did not produce a reply: a status from the skeleton, a handler's error, or a gate error. */
export class RpcError extends Error {
  constructor(
    message: string,
    /** farcall.Status (BadRequest, Failed, ...), or 0 for a gate error. */
    readonly status: Status | 0,
    /** The handler's application code (Status.Failed), else 0. */
    readonly code: number,
    /** "Service.Method". */
    readonly method: string,
    /** The entry's raw result (negative) or the envelope's length. */
    readonly result: number,
  ) {
    super(message);
    this.name = 'RpcError';
  }

  get statusName(): string {
    return STATUS_NAMES[this.status] ?? (this.status === 0 ? 'Gate' : String(this.status));
  }
}

/** The backend was generated from a different schema (or does not serve the service at all). */
export class SchemaMismatchError extends Error {
  constructor(message: string, readonly service: string, readonly differences: string[]) {
    super(message);
    this.name = 'SchemaMismatchError';
  }
}

function hex(v: bigint): string {
  return '0x' + v.toString(16).padStart(16, '0');
}

function byteBuffer(b: Buffer): flatbuffers.ByteBuffer {
  return new flatbuffers.ByteBuffer(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
}

/** Asks the backend for its identity of `info.service` and compares it with ours, method by method. */
export async function checkIdentity(target: CallTarget, info: ServiceInfo): Promise<void> {
  if (target.entries && !target.entries.includes(info.idEntry)) {
    const has = info.methods.filter((m) => target.entries!.includes(m.entry)).map((m) => m.entry);
    throw new SchemaMismatchError(
      `the backend does not serve ${info.service}: it has no entry ${info.idEntry}` +
        (has.length ? ` (it has ${has.join(', ')}: was it built without the generated server skeleton?)` : ''),
      info.service, [`missing ${info.idEntry}`]);
  }
  const r = await target.callRaw(info.idEntry, new Uint8Array(0), { outCap: 65536 });
  const bb = r.result >= 0 ? byteBuffer(r.output) : null;
  if (!bb || !bb.__has_identifier('FCI0'))
    throw new SchemaMismatchError(`the backend's ${info.idEntry} gave no identity (result ${r.result})`, info.service, ['no identity']);
  const id = ServiceIdentity.getRootAsServiceIdentity(bb);
  if (id.service() !== info.service)
    throw new SchemaMismatchError(`the backend's ${info.idEntry} serves ${id.service()}, not ${info.service}`, info.service, ['service name']);
  if (id.hash() === info.hash) return;
  const theirs = new Map<string, bigint>();
  for (let i = 0; i < id.methodsLength(); i++) {
    const m = id.methods(i)!;
    theirs.set(m.name()!, m.hash());
  }
  const diffs: string[] = [];
  for (const m of info.methods) {
    const h = theirs.get(m.name);
    if (h === undefined) diffs.push(`method ${m.name} is missing in the backend`);
    else if (h !== m.hash) diffs.push(`method ${m.name} differs (stub ${hex(m.hash)}, backend ${hex(h)})`);
    theirs.delete(m.name);
  }
  for (const name of theirs.keys()) diffs.push(`method ${name} exists only in the backend`);
  throw new SchemaMismatchError(
    `schema mismatch for ${info.service}: ${diffs.join('; ')}. The stub was generated from ${info.schema} by ${info.generator}, ` +
      `the backend from ${id.schema()} by ${id.generator()}; regenerate both sides from the same schema`,
    info.service, diffs);
}

/** Calls `method` with a finished request and returns the reply's ByteBuffer, or throws RpcError. */
export async function callMethod(target: CallTarget, info: ServiceInfo, method: MethodInfo, request: Uint8Array, opts: StubOptions): Promise<flatbuffers.ByteBuffer> {
  const what = `${info.service.split('.').pop()}.${method.name}`;
  const r = await target.callRaw(method.entry, request, { outCap: opts.outCap ?? 65536, timeoutMs: opts.timeoutMs });
  if (r.result < 0) {
    const status = r.result <= -2001 && r.result >= -2005 ? -2000 - r.result : 0;
    const why = status ? STATUS_NAMES[status] : GATE_ERRORS[r.result] ?? 'error';
    throw new RpcError(`${what} failed: ${why} (${r.result})`, status as Status | 0, 0, what, r.result);
  }
  const bb = byteBuffer(r.output);
  if (bb.__has_identifier('FCE0')) {
    const e = ErrorTable.getRootAsError(bb);
    const status = e.status();
    throw new RpcError(`${what} failed: ${STATUS_NAMES[status] ?? status}${e.code() ? ` (code ${e.code()})` : ''}: ${e.message() ?? ''}`,
      status, e.code(), what, r.result);
  }
  if (!bb.__has_identifier('FCR0')) throw new RpcError(`${what}: the reply is not a farcall reply`, 0, 0, what, r.result);
  return bb;
}

/** Encodes an object-API value (anything with pack()) as a finished buffer, reusing `builder`. */
export function encode(builder: flatbuffers.Builder, value: { pack(b: flatbuffers.Builder): flatbuffers.Offset }): Uint8Array {
  builder.clear();
  builder.finish(value.pack(builder));
  return builder.asUint8Array();
}
