/* Bare KVM VM creation with many VMs already in the process: the kernel's share of farcall's
 * fork creation cost (bench/scale.ts). No farcall code: each VM is what a fork asks KVM for
 * (KVM_CREATE_VM, manual dirty-log protection, two dirty-logged memslots over copy-on-write
 * mappings of one 16 MiB master memfd, one vCPU with its kvm_run mapping, one KVM_RUN).
 *
 *   vm_create PROBES STAGE...      e.g. vm_create 32 0 1000 2000
 *
 * For each stage it first creates (and runs once) VMs until STAGE of them exist, then times
 * PROBES more, each step apart, and destroys the probes. It prints one line per probe:
 *   STAGE create_vm enable_cap memslots vcpu first_run total      (nanoseconds)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define RAM (16u << 20)
#define KMEM (2u << 20)

static int kvm, master_fd, run_size;

static uint64_t now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "vm_create: %s: %s\n", what, strerror(errno));
  exit(1);
}

struct vm {
  int fd, vcpu;
  void *ram, *kmem, *run;
};

/* Creates one VM; t[] receives the time of each step. */
static void make(struct vm *v, uint64_t t[5]) {
  uint64_t s = now();
  v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
  if (v->fd < 0) die("KVM_CREATE_VM");
  t[0] = now() - s, s = now();
  struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE}};
  if (ioctl(v->fd, KVM_ENABLE_CAP, &cap) < 0) die("KVM_ENABLE_CAP");
  t[1] = now() - s, s = now();
  v->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, master_fd, 0);
  v->kmem = mmap(NULL, KMEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, master_fd, RAM);
  if (v->ram == MAP_FAILED || v->kmem == MAP_FAILED) die("mmap");
  struct kvm_userspace_memory_region m0 = {0, KVM_MEM_LOG_DIRTY_PAGES, 0, RAM, (uintptr_t)v->ram};
  struct kvm_userspace_memory_region m1 = {1, KVM_MEM_LOG_DIRTY_PAGES, 0x40000000, KMEM, (uintptr_t)v->kmem};
  if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &m0) < 0 || ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &m1) < 0)
    die("KVM_SET_USER_MEMORY_REGION");
  t[2] = now() - s, s = now();
  v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
  if (v->vcpu < 0) die("KVM_CREATE_VCPU");
  v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
  if (v->run == MAP_FAILED) die("mmap kvm_run");
  t[3] = now() - s, s = now();
  /* The reset state faults at once (no code at the reset vector under kvm_pvm): one exit. */
  ((struct kvm_run *)v->run)->immediate_exit = 0;
  ioctl(v->vcpu, KVM_RUN, 0);
  t[4] = now() - s;
}

static void destroy(struct vm *v) {
  munmap(v->run, run_size);
  close(v->vcpu);
  close(v->fd);
  munmap(v->ram, RAM);
  munmap(v->kmem, KMEM);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: vm_create PROBES STAGE...\n");
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  master_fd = memfd_create("vm_create-master", MFD_CLOEXEC);
  if (master_fd < 0 || ftruncate(master_fd, RAM + KMEM) < 0) die("memfd");
  int probes = atoi(argv[1]), held_n = 0, cap = 0;
  struct vm *held = NULL;
  for (int a = 2; a < argc; a++) {
    int stage = atoi(argv[a]);
    if (stage > cap) {
      cap = stage;
      held = realloc(held, sizeof *held * cap);
      if (!held) die("realloc");
    }
    uint64_t t[5];
    while (held_n < stage) make(&held[held_n++], t);
    struct vm p[probes];
    for (int i = 0; i < probes; i++) {
      uint64_t s = now();
      make(&p[i], t);
      printf("%d %llu %llu %llu %llu %llu %llu\n", stage, (unsigned long long)t[0], (unsigned long long)t[1],
             (unsigned long long)t[2], (unsigned long long)t[3], (unsigned long long)t[4],
             (unsigned long long)(now() - s));
    }
    for (int i = 0; i < probes; i++) destroy(&p[i]);
    fflush(stdout);
  }
  return 0;
}
