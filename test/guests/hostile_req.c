/* A hostile request program: it does not use the SDK (nothing of its own restores state), and
 * each request tries to leave something behind for the next one or to read VMM memory.
 *
 * Every request starts right after the raw farcall_ready() system call, where `ready_capture`
 * records the general registers, FS/GS bases, RFLAGS and the whole XSAVE state before any
 * compiled code runs. "probe" answers that record: two probes must be equal byte for byte, whatever
 * ran on the fork in between. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SYS_READY 0x4600
#define SYS_RESPOND 0x4601
#define SYS_FAIL 0x4602

static unsigned char arena[1 << 16] __attribute__((aligned(4096)));
static struct {
  void *buf;
  size_t len;
} current;

/* What the request found when it started (filled by ready_capture). */
struct capture {
  uint64_t gpr[15]; /* rax rbx rcx rdx rsi rdi rbp r8-r15 */
  uint64_t rflags, fs, gs;
  uint64_t pad[6];
  unsigned char xsave[8192] __attribute__((aligned(64)));
};
struct capture cap __attribute__((aligned(64)));

static unsigned char sink[1 << 20];
static char reply[256];

long raw6(long nr, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#define raw3(nr, a, b, c) raw6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* The same record taken at the program's entry point, before the C library runs (linked with
 * -e entry_capture): what the VM itself held when this program was given it. */
struct capture ecap __attribute__((aligned(64)));
__asm__(".text\n.globl entry_capture\nentry_capture:\n"
        "  mov %rax, ecap+0(%rip)\n  mov %rbx, ecap+8(%rip)\n  mov %rcx, ecap+16(%rip)\n  mov %rdx, ecap+24(%rip)\n"
        "  mov %rsi, ecap+32(%rip)\n  mov %rdi, ecap+40(%rip)\n  mov %rbp, ecap+48(%rip)\n  mov %r8, ecap+56(%rip)\n"
        "  mov %r9, ecap+64(%rip)\n  mov %r10, ecap+72(%rip)\n  mov %r11, ecap+80(%rip)\n  mov %r12, ecap+88(%rip)\n"
        "  mov %r13, ecap+96(%rip)\n  mov %r14, ecap+104(%rip)\n  mov %r15, ecap+112(%rip)\n"
        "  pushf\n  pop %rax\n  mov %rax, ecap+120(%rip)\n"
        "  rdfsbase %rax\n  mov %rax, ecap+128(%rip)\n  rdgsbase %rax\n  mov %rax, ecap+136(%rip)\n"
        "  mov $-1, %eax\n  mov $-1, %edx\n  xsave64 ecap+192(%rip)\n"
        "  mov ecap+0(%rip), %rax\n  mov ecap+24(%rip), %rdx\n"
        "  jmp _start\n");

/* ready_capture(arena, size, &current): farcall_ready() by hand, then the record. */
void ready_capture(void *a, long n, void *cur);
__asm__(".text\n.globl ready_capture\nready_capture:\n"
        "  push %rbx\n  push %rbp\n  push %r12\n  push %r13\n  push %r14\n  push %r15\n"
        "  mov $0x4600, %eax\n  syscall\n"
        /* first instruction of every request */
        "  mov %rax, cap+0(%rip)\n  mov %rbx, cap+8(%rip)\n  mov %rcx, cap+16(%rip)\n  mov %rdx, cap+24(%rip)\n"
        "  mov %rsi, cap+32(%rip)\n  mov %rdi, cap+40(%rip)\n  mov %rbp, cap+48(%rip)\n  mov %r8, cap+56(%rip)\n"
        "  mov %r9, cap+64(%rip)\n  mov %r10, cap+72(%rip)\n  mov %r11, cap+80(%rip)\n  mov %r12, cap+88(%rip)\n"
        "  mov %r13, cap+96(%rip)\n  mov %r14, cap+104(%rip)\n  mov %r15, cap+112(%rip)\n"
        "  pushf\n  pop %rax\n  mov %rax, cap+120(%rip)\n"
        "  rdfsbase %rax\n  mov %rax, cap+128(%rip)\n  rdgsbase %rax\n  mov %rax, cap+136(%rip)\n"
        "  mov $-1, %eax\n  mov $-1, %edx\n  xsave64 cap+192(%rip)\n"
        "  cld\n"
        "  pop %r15\n  pop %r14\n  pop %r13\n  pop %r12\n  pop %rbp\n  pop %rbx\n  ret\n");

static int has_avx512(void) {
  unsigned a = 7, b, c = 0, d;
  __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  return (b >> 16) & 1;
}

/* Leaves garbage in every piece of user-reachable CPU state, then answers without any cleanup. */
__attribute__((target("avx512f,avx2,fsgsbase"))) static void dirty_everything(void) {
  static const uint64_t pat[8] __attribute__((aligned(64))) = {
      0x4141414141414141ull, 0x4242424242424242ull, 0x4343434343434343ull, 0x4444444444444444ull,
      0x4545454545454545ull, 0x4646464646464646ull, 0x4747474747474747ull, 0x4848484848484848ull};
  unsigned mx = 0x9fc0; /* FTZ, DAZ, all exceptions masked: a rounding mode the next request would inherit */
  unsigned short cw = 0x0c7f; /* x87: round toward zero, single precision */
  __asm__ volatile("vmovdqa %0, %%ymm0; vmovdqa %0, %%ymm7; vmovdqa %0, %%ymm15" : : "m"(pat) : "xmm0", "xmm7", "xmm15");
  if (has_avx512())
    __asm__ volatile("vmovdqa64 %0, %%zmm1; vmovdqa64 %0, %%zmm31; kxnorw %%k0, %%k0, %%k3; kxnorw %%k0, %%k0, %%k7" : : "m"(pat)
                     : "xmm1", "xmm31");
  __asm__ volatile("ldmxcsr %0; fldcw %1; fld1; fldpi" : : "m"(mx), "m"(cw));
  __asm__ volatile("wrgsbase %0" : : "r"(0x0000474700474700ull));
}

/* Deep recursion: a stack overflow, which must fault in a guard page, not run over the heap. */
#pragma GCC diagnostic ignored "-Winfinite-recursion"
static long recurse(long n) {
  volatile char frame[512];
  frame[0] = (char)n;
  return recurse(n + 1) + frame[0];
}

#define ANSWER(s, n) raw3(SYS_RESPOND, s, n, 0)

int main(int argc, char **argv) {
  /* A tenant that leaves its VM dirty even if it never serves a request. */
  if (argc > 1 && !strcmp(argv[1], "dirty-init")) dirty_everything();
  for (;;) {
    ready_capture(arena, sizeof arena, &current);
    const char *req = current.buf;
    size_t len = current.len;
    char cmd[64] = {0};
    memcpy(cmd, req, len < sizeof cmd - 1 ? len : sizeof cmd - 1);

    if (!strcmp(cmd, "probe")) ANSWER(&cap, sizeof cap);
    if (!strcmp(cmd, "entry")) ANSWER(&ecap, sizeof ecap);
    if (!strcmp(cmd, "sink-count")) {
      /* Non-zero bytes in the 1 MiB sink ("big:N" fills it): another tenant's, if any. */
      long n = 0;
      for (size_t i = 0; i < sizeof sink; i++) n += sink[i] != 0;
      ANSWER(&n, sizeof n);
    }
    if (!strcmp(cmd, "dirty")) {
      dirty_everything();
      __asm__ volatile("std");
      ANSWER("dirtied", 7);
    }
    if (!strcmp(cmd, "dirty-crash")) {
      dirty_everything();
      __asm__ volatile("ud2");
    }
    if (!strcmp(cmd, "rep")) {
      /* A long string read from a guest-virtual range with no memory behind it (the gate region
       * in trap-page mode): each piece is an MMIO exit the VMM must finish or cancel. */
      void *from = (void *)0x8000000000ull, *to = sink;
      unsigned long n = sizeof sink;
      __asm__ volatile("rep movsb" : "+S"(from), "+D"(to), "+c"(n) : : "memory");
      ANSWER("survived", 8);
    }
    if (!strcmp(cmd, "bad-fs")) {
      /* Printed output, then a thread-pointer value the CPU refuses (non-canonical). */
      raw3(1, 1, "SECRET-OUTPUT", 13);
      long a = raw3(158, 0x1002, 0x8000000000000000ull, 0); /* ARCH_SET_FS */
      long b = raw3(158, 0x1001, 0x0000900000000000ull, 0); /* ARCH_SET_GS */
      int n = snprintf(reply, sizeof reply, "%ld %ld", a, b);
      ANSWER(reply, (size_t)n);
    }
    if (!strncmp(cmd, "big:", 4)) {
      long n = 0;
      for (const char *c = cmd + 4; *c >= '0' && *c <= '9'; c++) n = n * 10 + (*c - '0');
      memset(sink, 'B', sizeof sink);
      ANSWER(sink, (size_t)n);
    }
    if (!strncmp(cmd, "reserve-touch:", 14)) {
      /* Reserve address space the lazy way (PROT_NONE, free), then write every page of it with
         no further call: mprotect is not enforced, so nothing but the VMM's count can stop it. */
      long mib = 0;
      for (const char *c = cmd + 14; *c >= '0' && *c <= '9'; c++) mib = mib * 10 + (*c - '0');
      long p = raw6(9 /* mmap */, 0, mib << 20, 0 /* PROT_NONE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
      if (p < 0 && p > -4096) ANSWER("mmap refused", 12);
      for (long off = 0; off < (mib << 20); off += 4096) ((volatile char *)p)[off] = 1;
      ANSWER("touched", 7);
    }
    if (!strcmp(cmd, "write-reset")) {
      /* The reset page, where every request starts (0x7fffff0000): readable, never writable. */
      *(volatile unsigned char *)0x7fffff0f00ull = 0xcc;
      ANSWER("wrote the reset page", 20);
    }
    if (!strcmp(cmd, "spin"))
      for (volatile unsigned long n = 0;; n++) {
      }
    if (!strncmp(cmd, "peek:", 5)) {
      /* 64 bytes at a guest-virtual address given in hex (another tenant's backend window). */
      unsigned long a = 0;
      for (const char *c = cmd + 5; *c; c++) a = a * 16 + (unsigned long)(*c <= '9' ? *c - '0' : (*c | 32) - 'a' + 10);
      memcpy(reply, (const void *)a, 64);
      ANSWER(reply, 64);
    }
    if (!strcmp(cmd, "quiet-fail")) raw3(SYS_FAIL, "failed quietly", 14, 0);
    if (!strcmp(cmd, "clock")) {
      /* An invalid clock: Linux fails with EINVAL and writes nothing. */
      unsigned char ts[32];
      memset(ts, 0xAA, sizeof ts);
      long r = raw3(228, 10, ts, 0);
      long r2 = raw3(228, 1000, ts + 16, 0);
      int same = 1;
      for (size_t i = 0; i < sizeof ts; i++) same &= ts[i] == 0xAA;
      int n = snprintf(reply, sizeof reply, "%ld %ld %s", r, r2, same ? "untouched" : "written");
      ANSWER(reply, (size_t)n);
    }
    if (!strcmp(cmd, "wrap")) {
      /* Lengths that wrap when rounded up to pages. */
      long m = raw6(9, 0, -4000L, 3, 0x22, -1, 0);
      long m2 = raw6(9, 0x10000000, -4000L, 3, 0x32, -1, 0);
      long ok = raw6(9, 0, 8192, 3, 0x22, -1, 0);
      long r = raw6(25, ok, 8192, -4000L, 1, 0, 0);
      long u = raw3(11, ok, -4000L, 0);
      int n = snprintf(reply, sizeof reply, "%ld %ld %ld %ld", m, m2, r, u);
      ANSWER(reply, (size_t)n);
    }
    if (!strcmp(cmd, "recurse")) {
      long r = recurse(0);
      ANSWER(&r, sizeof r);
    }
    raw3(SYS_FAIL, "unknown command", 15, 0);
  }
}
