// The VMM core's C++ unit tests (native/test/unit.cpp, doctest): exit decoding for every entry
// flavor, the layout, ELF parsing, flavor names, the error-code list. They need no /dev/kvm.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { root } from './helpers';

test('C++ unit tests of the VMM core pass (farcall-unit)', () => {
  const bin = path.join(root, 'build', 'native', 'farcall-unit');
  expect(fs.existsSync(bin)).toBe(true); // built by setup (needs Debian's doctest-dev)
  const r = spawnSync(bin, ['--no-colors'], { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`farcall-unit failed:\n${r.stdout}\n${r.stderr}`);
  expect(r.stdout).toMatch(/test cases: +\d+ \| +\d+ passed \| +0 failed/);
});
