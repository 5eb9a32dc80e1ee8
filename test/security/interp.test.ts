// A hostile dynamic program (PT_INTERP) against the ELF loader: an interpreter path that climbs
// out of the view, names a text file, a directory, a program that is itself dynamic, or an
// interpreter whose segment is huge or overflows. Each is refused with a typed error before the
// guest runs; no host file outside the view is read. The programs are hello_musl with its
// GNU_STACK header turned into PT_INTERP, the path appended to the file.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { CorruptElfError, DynamicProgramError, FarcallError } from '../../src';
import { runProgram } from '../../src/run';
import { describeKvm, guest } from '../helpers';

const SECRET = 'INTERP-SECRET-0b9e';
const PT_INTERP = 3, PT_LOAD = 1, PT_GNU_STACK = 0x6474e551;

// hello_musl asking for `interp` as its ELF interpreter.
function withInterp(interp: string): Buffer {
  const f = fs.readFileSync(guest('hello_musl'));
  const phoff = Number(f.readBigUInt64LE(0x20)), phnum = f.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * 56;
    if (f.readUInt32LE(ph) !== PT_GNU_STACK) continue;
    const p = Buffer.concat([f, Buffer.from(`${interp}\0`)]);
    p.writeUInt32LE(PT_INTERP, ph);
    p.writeBigUInt64LE(BigInt(f.length), ph + 8); // p_offset
    p.writeBigUInt64LE(BigInt(interp.length + 1), ph + 32); // p_filesz
    p.writeBigUInt64LE(BigInt(interp.length + 1), ph + 40); // p_memsz
    return p;
  }
  throw new Error('hello_musl has no GNU_STACK header');
}

// hello_musl, marked position-independent (an interpreter must be), with its last PT_LOAD's
// memory size set to `memsz`.
function withMemsz(memsz: bigint): Buffer {
  const f = Buffer.from(fs.readFileSync(guest('hello_musl')));
  f.writeUInt16LE(3, 0x10); // e_type = ET_DYN
  const phoff = Number(f.readBigUInt64LE(0x20)), phnum = f.readUInt16LE(0x38);
  let last = -1;
  for (let i = 0; i < phnum; i++) if (f.readUInt32LE(phoff + i * 56) === PT_LOAD) last = phoff + i * 56;
  f.writeBigUInt64LE(memsz, last + 40);
  return f;
}

describeKvm('security: hostile ELF interpreters', () => {
  let outside: string, view: string;
  beforeAll(() => {
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-interp-'));
    view = path.join(outside, 'view');
    fs.mkdirSync(path.join(view, 'dir'), { recursive: true });
    fs.writeFileSync(path.join(outside, 'secret'), SECRET);
    fs.writeFileSync(path.join(view, 'text'), 'not an ELF file');
    fs.writeFileSync(path.join(view, 'self'), withInterp('/self'));
    fs.writeFileSync(path.join(view, 'huge'), withMemsz(1n << 40n));
    fs.writeFileSync(path.join(view, 'wrap'), withMemsz(0xffffffffffff0000n));
    fs.copyFileSync(guest('hello_musl'), path.join(view, 'fixed')); // ET_EXEC: its own addresses
    fs.symlinkSync('../secret', path.join(view, 'out_link'));
  });
  afterAll(() => fs.rmSync(outside, { recursive: true, force: true }));

  const run = async (interp: string) => {
    const prog = path.join(outside, 'prog');
    fs.writeFileSync(prog, withInterp(interp));
    return runProgram(prog, { files: { readOnly: view } });
  };

  test('every hostile interpreter is a typed error, and nothing outside the view is read', async () => {
    const cases: [string, new (...a: never[]) => FarcallError, RegExp][] = [
      ['/../secret', DynamicProgramError, /cannot be read/],
      ['../../secret', DynamicProgramError, /cannot be read/],
      ['/out_link', DynamicProgramError, /cannot be read/],
      ['/dir', DynamicProgramError, /cannot be read/],
      ['/nowhere', DynamicProgramError, /cannot be read/],
      [`/${'a'.repeat(4000)}`, DynamicProgramError, /cannot be read/],
      ['/text', FarcallError, /not an ELF/],
      ['/self', DynamicProgramError, /dynamic/],
      ['/fixed', DynamicProgramError, /position-independent/],
      ['/huge', FarcallError, /memory|fit/],
      ['/wrap', CorruptElfError, /overflows/],
    ];
    for (const [interp, type, message] of cases) {
      const err = await run(interp).then(() => undefined, (e: unknown) => e);
      expect([interp, err]).toEqual([interp, expect.any(type)]);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(SECRET);
    }
  });
});
