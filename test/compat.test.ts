// Compatibility: real third-party programs that setup installs or builds (Debian's busybox-static,
// Lua 5.4 and SQLite from Debian's static libraries, Rust programs built with cargo, a Go program
// built with Debian's Go, C with POSIX threads), each run in a VM and natively; stdout, stderr and
// the exit code must be the same, byte for byte.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { RunResult, runProgram } from '../src/run';
import { describeKvm, guest } from './helpers';

const BUSYBOX = '/bin/busybox';

interface Case {
  name: string;
  program: string;
  args: string[];
  stdin?: string;
  /** Run natively with this directory as the working directory, and in the VM as its file view. */
  files?: boolean;
  /** A writable directory: natively a fresh temporary one, in the VM the scratch directory at
   * /tmp; "@TMP" in the arguments names it. */
  scratch?: boolean;
  /** More checks on the VM's run. */
  check?: (vm: RunResult) => void;
}

// A small tree the file-view cases read: natively it is the working directory, in the VM "/".
const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-compat-'));
fs.mkdirSync(path.join(tree, 'etc'));
fs.writeFileSync(path.join(tree, 'etc', 'config.lua'), 'return { name = "farcall", sizes = { 3, 1, 2 } }\n');
fs.writeFileSync(path.join(tree, 'data.txt'), 'the quick brown fox\njumps over\nthe lazy dog\n'.repeat(300));
fs.symlinkSync('data.txt', path.join(tree, 'link.txt'));
afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

async function same(c: Case): Promise<void> {
  if (!fs.existsSync(c.program)) throw new Error(`${c.program} is missing: run node scripts/setup.js (as root it installs it)`);
  const dir = c.scratch ? fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-compat-scratch-')) : '';
  const args = (at: string) => c.args.map((a) => a.split('@TMP').join(at));
  let native;
  try {
    native = spawnSync(c.program, args(dir), { input: c.stdin ?? '', env: {}, argv0: c.program, cwd: c.files ? tree : undefined });
  } finally {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
  const files = { ...(c.files ? { readOnly: tree } : {}), ...(c.scratch ? { scratch: { path: '/tmp', maxMiB: 64 } } : {}) };
  const vm = await runProgram(c.program, { args: args('/tmp'), stdin: c.stdin ?? '', argv0: c.program, files });
  expect({ stdout: vm.stdout.toString(), stderr: vm.stderr.toString(), code: vm.exitCode }).toEqual({
    stdout: native.stdout.toString(),
    stderr: native.stderr.toString(),
    code: native.status,
  });
  expect(vm.stdout.equals(native.stdout)).toBe(true);
  c.check?.(vm);
}

const bb = (args: string[], stdin = ''): Case => ({ name: `busybox ${args.join(' ')}`, program: BUSYBOX, args, stdin });
const words = 'the quick brown fox jumps over the lazy dog the end\n'.repeat(50);

const cases: Case[] = [
  bb(['echo', 'hello', 'world']),
  bb(['printf', '%s-%05d|%x\\n', 'a', '42', '255']),
  bb(['seq', '-s', ',', '1', '3', '40']),
  bb(['sort', '-k2,2n', '-t', ':'], 'a:3\nb:1\nc:2\n'),
  bb(['sort', '-u'], words.split(' ').join('\n')),
  bb(['md5sum'], words),
  bb(['sha256sum'], words),
  bb(['sha512sum'], words),
  bb(['wc'], words),
  bb(['tr', 'a-z', 'A-Z'], words),
  bb(['sed', '-e', 's/the/THE/2', '-e', '/lazy/!d'], 'the a the b\nlazy the x the\n'),
  bb(['awk', '{ n[$1]++ } END { for (k in n) s += n[k]; print s, NR, NF }'], words),
  bb(['expr', '6', '*', '7']),
  bb(['factor', '1234567', '600851475143']),
  bb(['base64'], words),
  bb(['uuencode', 'name'], 'hello'), // its mode line follows umask
  bb(['od', '-A', 'x', '-t', 'x1z'], 'binary\x00\x01\x02'),
  bb(['hexdump', '-C'], words.slice(0, 100)),
  bb(['cut', '-d', ' ', '-f', '2,4'], words),
  bb(['tail', '-n', '3'], words),
  bb(['tac'], 'a\nb\nc\n'),
  bb(['grep', '-c', 'fox'], words),
  bb(['dc'], '2 64 ^ p 7 3 / p'),
  bb(['xxd'], 'hello world'),
  bb(['cksum'], words),
  bb(['uniq', '-c'], 'a\na\nb\n'),
  bb(['false']),
  // The shell, in one process: arithmetic, loops, functions, here-documents and here-strings
  // (pipe2 + dup2 inside the process), umask.
  bb(['ash', '-c', 'f() { echo "f:$1"; }; x=5; echo $((x*3)); for i in 1 2 3; do f $i; done']),
  bb(['ash', '-c', 'read a b <<END\nx y\nEND\necho "$b $a"; read c <<< "here"; echo $c']),
  bb(['ash', '-c', 'umask; umask 027; umask; exit 3']),
  {
    name: 'lua: tables, strings, string.format, closures, pcall',
    program: guest('lua'),
    args: [
      'local t = {} for i = 1, 20 do t[#t + 1] = i * i end print(table.concat(t, ","))\n' +
        'print(string.format("%5.2f %d %s", math.pi, #arg, arg[1]))\n' +
        'local function counter() local n = 0 return function() n = n + 1 return n end end\n' +
        'local c = counter() c() c() print(c(), select("#", pcall(error, "x")))\n' +
        'local w = {} for x in ("b a c a"):gmatch("%a") do w[#w + 1] = x end table.sort(w) print(table.concat(w))',
      'argument',
    ],
  },
  {
    name: 'sqlite: tables, aggregates, a recursive CTE, JSON',
    program: guest('sqlite'),
    args: [],
    stdin:
      "create table t(a int, b text); insert into t values(1,'x'),(2,'y'),(3,null);" +
      'select a*10, b from t order by a desc; select count(*), sum(a), avg(a) from t;' +
      'with recursive c(x) as (select 1 union all select x+1 from c where x<100) select sum(x), group_concat(x % 7) from c;' +
      `select json_object('a', 1, 'b', json_array(1, 2));`,
  },
  { name: 'rust: wordfreq (HashMap, sort, stdin, args)', program: guest('wordfreq'), args: ['--top'], stdin: words },
  // Threads (docs/threads.md), at the default memoryMiB: Go reserves ~700 MiB of address space.
  {
    name: 'go: goroutines, channels, sync.WaitGroup, a mutex, encoding/json (exit 3)',
    program: guest('gojson'),
    args: [],
    stdin: JSON.stringify({ texts: words.split('\n').filter((l) => l).slice(0, 12).concat(['Go, go. GO!']), top: 6 }),
  },
  { name: 'go: bad input to stderr, exit 2', program: guest('gojson'), args: [], stdin: '{"texts": [1' },
  { name: 'rust: std::thread, mpsc, Mutex/Condvar/Barrier, scoped threads', program: guest('rthreads'), args: [], stdin: words },
  { name: 'c: POSIX threads (glibc, static)', program: guest('pthreads'), args: [] },
  // Through the read-only file view.
  { ...bb(['wc', 'data.txt', 'link.txt']), files: true },
  { ...bb(['sha256sum', 'data.txt', 'etc/config.lua']), files: true },
  { ...bb(['grep', '-c', 'lazy', 'data.txt']), files: true },
  { ...bb(['ls', '-R', '.']), files: true },
  { ...bb(['find', '.', '-type', 'f']), files: true },
  { ...bb(['readlink', 'link.txt']), files: true },
  { ...bb(['cat', 'missing.txt']), files: true },
  { ...bb(['ash', '-c', 'n=0; while read a b c; do n=$((n+1)); done < data.txt; read x < etc/config.lua; echo "$n $x"']), files: true },
  {
    name: 'lua: io.open, io.lines, dofile through the file view',
    program: guest('lua'),
    args: [
      'local n = 0 for l in io.lines("data.txt") do n = n + #l end print(n)\n' +
        'local f = assert(io.open("etc/config.lua")) local src = f:read("a") f:close() print(#src)\n' +
        'local cfg = dofile("etc/config.lua") table.sort(cfg.sizes) print(cfg.name, table.concat(cfg.sizes, " "))\n' +
        'print(io.open("nope.txt"))',
    ],
    files: true,
  },
  // Through the scratch directory (a writable /tmp held in the VMM).
  {
    // Shell builtins only: an applet that is not one would fork, which farcall does not do.
    ...bb(['ash', '-c', 'cd @TMP && echo one > a && echo two >> a && while read l; do echo "got $l"; done < a; ' +
      'read x < a; echo "$x"; [ -f a ] && echo file; [ -d . ] && echo dir; cd /; [ -f @TMP/a ] && echo still; ' +
      'echo nope > /no/such/dir/f; echo "exit $?"']),
    scratch: true,
  },
  {
    name: 'sqlite: an on-disk database with its journal, an index, VACUUM and a sorter that spills to temporary files',
    program: guest('sqlite'),
    args: ['@TMP/test.db'],
    stdin: fs.readFileSync(path.join(__dirname, 'compat', 'sqlite-disk.sql'), 'utf8'),
    scratch: true,
    // Every write transaction deletes its journal (5 here); more unlinks are the temporary files
    // SQLite removes as soon as it opens them (its sorter's spill, VACUUM's copy).
    check: (vm) => expect(vm.stats.syscalls[87]).toBeGreaterThan(5),
  },
  {
    name: 'lua: io.open writes, appends, seeks and reads back; os.rename, os.remove, io.tmpfile, os.tmpname',
    program: guest('lua'),
    args: [fs.readFileSync(path.join(__dirname, 'compat', 'scratch.lua'), 'utf8'), '@TMP'],
    scratch: true,
  },
];

describeKvm('compatibility: third-party programs, byte for byte against native', () => {
  test.each(cases.map((c) => [c.name, c]))('%s', async (_n, c) => {
    await same(c as Case);
  });
});
