// Checks an API call's options object: every key known, every value of its type. A typo
// ({ sise: 4 }) or a string where a number belongs ({ size: '4' }) is refused with a typed
// error naming the option, rather than silently ignored or misreported later.
import { InvalidArgumentError } from './errors';

export type OptionKind = 'number' | 'string' | 'boolean' | 'strings' | 'env' | 'object' | 'bytes';

const words: Record<OptionKind, string> = {
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  strings: 'a list of strings',
  env: 'an object of strings or a list of "K=V" strings',
  object: 'an object',
  bytes: 'a string, Buffer or Uint8Array',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');

function fits(kind: OptionKind, v: unknown): boolean {
  switch (kind) {
    case 'number': return typeof v === 'number' && !Number.isNaN(v);
    case 'string': return typeof v === 'string';
    case 'boolean': return typeof v === 'boolean';
    case 'strings': return isStrings(v);
    case 'env': return isStrings(v) || (isObject(v) && Object.values(v).every((x) => typeof x === 'string'));
    case 'object': return isObject(v);
    case 'bytes': return typeof v === 'string' || v instanceof Uint8Array;
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  return v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v);
}

/** Throws InvalidArgumentError unless `opts` is undefined or an object whose keys are in `spec`, each of its kind. */
export function checkOptions(opts: unknown, spec: Record<string, OptionKind>, what: string): void {
  if (opts === undefined) return;
  if (!isObject(opts)) throw new InvalidArgumentError('InvalidArgument', `${what}: options must be an object, got ${show(opts)}`);
  for (const [k, v] of Object.entries(opts)) {
    const kind = spec[k];
    if (!kind)
      throw new InvalidArgumentError('InvalidArgument', `${what}: unknown option "${k}" (valid options: ${Object.keys(spec).join(', ')})`, { option: k });
    if (v !== undefined && !fits(kind, v))
      throw new InvalidArgumentError('InvalidArgument', `${what}: option ${k} must be ${words[kind]}, got ${show(v)}`, { option: k });
  }
}
