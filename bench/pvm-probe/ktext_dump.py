#!/usr/bin/env python3
"""Dump and disassemble host kernel text without /proc/kcore (this host has no
kcore and no /dev/mem): bpftrace reads kernel memory with bpf_probe_read from a
BEGIN probe, 32 bytes per printf, and objdump disassembles the bytes with
/proc/kallsyms names.  Needs root, `apt-get install bpftrace`, binutils.
  usage: ktext_dump.py SYMBOL_OR_HEXADDR LENGTH OUT.bin   (writes OUT.bin and OUT.s)
e.g.   ktext_dump.py pvm_ds_syscall_body 0x500 /tmp/ds.bin
Struct layouts come from BTF instead:
  bpftool btf dump file /sys/kernel/btf/vmlinux format c | grep -A80 'struct vcpu_pvm {'"""
import bisect, re, struct, subprocess, sys


def kallsyms():
    syms = []
    for line in open('/proc/kallsyms'):
        a, _, n = line.split()[:3]
        if int(a, 16) and not n.startswith('__pfx'):
            syms.append((int(a, 16), n))
    syms.sort()
    return syms


def dump(start, length):
    data = bytearray()
    for base in range(start, start + length, 4096):
        n = min(4096, start + length - base)
        stmts = []
        for a in range(base, base + n, 32):
            args = ", ".join("*(uint64*)0x%x" % (a + 8 * i) for i in range(4))
            stmts.append('printf("%%lx %%016lx %%016lx %%016lx %%016lx\\n", 0x%x, %s);' % (a, args))
        r = subprocess.run(["bpftrace", "-e", "BEGIN { " + " ".join(stmts) + " exit(); }"],
                           capture_output=True, text=True, timeout=120)
        got = {}
        for line in r.stdout.splitlines():
            p = line.split()
            if len(p) == 5:
                try:
                    got[int(p[0], 16)] = [int(x, 16) for x in p[1:]]
                except ValueError:
                    pass
        for a in range(base, base + n, 32):
            if a not in got:
                sys.exit("bpftrace did not return %x: %s" % (a, r.stderr[-400:]))
            data += b"".join(struct.pack("<Q", v) for v in got[a])
    return bytes(data[:length])


def main():
    syms = kallsyms()
    names = {n: a for a, n in syms}
    start = names[sys.argv[1]] if sys.argv[1] in names else int(sys.argv[1], 16)
    length, out = int(sys.argv[2], 0), sys.argv[3]
    open(out, "wb").write(dump(start, length))
    addrs = [a for a, _ in syms]
    exact = dict(syms)

    def name(a):
        i = bisect.bisect_right(addrs, a) - 1
        if i < 0 or a - addrs[i] > 0x4000:
            return None
        return syms[i][1] + ('+0x%x' % (a - addrs[i]) if a != addrs[i] else '')
    dis = subprocess.run(['objdump', '-D', '-b', 'binary', '-mi386:x86-64', '--adjust-vma=0x%x' % start, out],
                         capture_output=True, text=True).stdout
    with open(re.sub(r'\.bin$', '', out) + '.s', 'w') as f:
        for line in dis.splitlines():
            m = re.match(r'\s*([0-9a-f]+):', line)
            if m and int(m.group(1), 16) in exact:
                f.write('\n<%s>:\n' % exact[int(m.group(1), 16)])
            line = re.sub(r'\b(ffffffff[0-9a-f]{8})\b',
                          lambda mm: mm.group(0) + (' <%s>' % name(int(mm.group(1), 16)) if name(int(mm.group(1), 16)) else ''), line)
            f.write(line + '\n')


if __name__ == '__main__':
    main()
