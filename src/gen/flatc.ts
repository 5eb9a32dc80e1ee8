// Running flatc: table code (--cpp, --ts) and the binary reflection (.bfbs) the generator reads.
// flatc's own diagnostics ("file:line: col: error: ...") are passed through unchanged.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { GenError } from './errors';

export function flatcPath(): string {
  return process.env.FLATC ?? 'flatc';
}

export function flatcVersion(): string {
  const r = spawnSync(flatcPath(), ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0)
    throw new GenError(`cannot run flatc (${flatcPath()}): ${r.error?.message ?? r.stderr.trim()}; install it with: apt-get install -y flatbuffers-compiler libflatbuffers-dev`);
  return r.stdout.trim();
}

/** Runs flatc with `args`; on failure throws a GenError carrying flatc's diagnostics. */
export function flatc(args: string[], what: string): void {
  const r = spawnSync(flatcPath(), args, { encoding: 'utf8' });
  if (r.error) throw new GenError(`cannot run flatc (${flatcPath()}): ${r.error.message}; install it with: apt-get install -y flatbuffers-compiler`);
  if (r.status !== 0) {
    const diag = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && l !== 'error:');
    throw new GenError(`flatc rejected ${what}:\n  ${diag.join('\n  ')}`);
  }
}

/** The reflection of `schema` as flatc writes it, with declaration files relative to the schema's folder ("//name.fbs"). */
export function reflect(schema: string, includes: string[]): Uint8Array {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-gen-'));
  try {
    flatc(
      ['--binary', '--schema', '--bfbs-comments', '--bfbs-builtins', '--bfbs-filenames', path.dirname(schema),
        ...includes.flatMap((i) => ['-I', i]), '-o', tmp, schema],
      schema,
    );
    const out = path.join(tmp, path.basename(schema).replace(/\.fbs$/, '.bfbs'));
    return new Uint8Array(fs.readFileSync(out));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
