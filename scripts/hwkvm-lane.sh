#!/usr/bin/env bash
# Runs one command against hardware KVM (AMD SVM) by emulation, and exits with its status.
#
#   scripts/hwkvm-lane.sh [--] COMMAND [ARG...]     e.g. scripts/hwkvm-lane.sh npx jest --runInBand
#
# QEMU's software emulator (TCG) provides a CPU with SVM and nested paging; a Debian kernel boots
# in it and loads kvm_amd, so /dev/kvm inside is real hardware KVM. The host's / is shared
# read-only (9p) with a tmpfs overlay, the project directory read-write, and COMMAND runs there
# (chroot) with the host's node and the already-built tree. Emulated: about 5-10x slower than
# the host, so the lane sets FARCALL_TIME_SCALE (test/helpers.ts stretches time limits by it).
#
# Exit status: COMMAND's own, or one of the lane's:
#   90  no usable /dev/kvm inside the VM (kvm_amd did not load)
#   91  boot timeout: the VM did not reach the command within FARCALL_HWKVM_BOOT_TIMEOUT seconds
#   92  setup failure: packages, the kernel download, the initramfs or QEMU itself
#   93  the VM stopped without reporting the command's status (kernel panic, QEMU crash)
#   94  the command ran longer than FARCALL_HWKVM_TIMEOUT seconds (killed)
#
# Environment:
#   FARCALL_HWKVM_CACHE         cache folder (kernel, initramfs); default <project>/build/hwkvm
#   FARCALL_HWKVM_MEM           guest memory, QEMU syntax; default 6G
#   FARCALL_HWKVM_SMP           vCPUs; default 1 (with 2, multi-threaded TCG left the guest kernel
#                               in soft lockups after ~15 minutes on a loaded 2-core host)
#   FARCALL_HWKVM_PHYS_BITS     the emulated CPU's physical address width; default 48
#   FARCALL_HWKVM_BOOT_TIMEOUT  seconds until the command must have started; default 180
#   FARCALL_HWKVM_TIMEOUT       seconds the command may run; default 0 (no limit)
#   FARCALL_TIME_SCALE          time-limit factor for the tests inside; default 8
# Every FARCALL_* variable and CI are passed to the command, with FARCALL_REQUIRE_KVM=1 and
# FARCALL_HWKVM_LANE=1 (benchmarks label their figures as emulated).
set -uo pipefail

[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
  sed -n '2,4p' "$0" >&2
  exit 2
fi

project=$(cd "$(dirname "$0")/.." && pwd)
cache=${FARCALL_HWKVM_CACHE:-$project/build/hwkvm}
mem=${FARCALL_HWKVM_MEM:-6G}
smp=${FARCALL_HWKVM_SMP:-1}
phys_bits=${FARCALL_HWKVM_PHYS_BITS:-48}
boot_timeout=${FARCALL_HWKVM_BOOT_TIMEOUT:-180}
run_timeout=${FARCALL_HWKVM_TIMEOUT:-0}
export FARCALL_TIME_SCALE=${FARCALL_TIME_SCALE:-8}
export FARCALL_REQUIRE_KVM=1 FARCALL_HWKVM_LANE=1

fail() {
  echo "hwkvm-lane: $1" >&2
  exit "${2:-92}"
}
say() { echo "hwkvm-lane: $*" >&2; }

# --- what the host needs -------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# (--list into a variable: with pipefail, `grep -q` closing the pipe early would fail the test)
applets=$(/bin/busybox --list 2>/dev/null)
grep -qx depmod <<<"$applets" || need+=(busybox-static)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]} (install them, or run as root)"
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >&2 ||
    fail "apt-get install ${need[*]} failed"
fi
bb=/bin/busybox

# --- the kernel: Debian's linux-image-amd64, unpacked (never installed) ---------------------------
mkdir -p "$cache" || fail "cannot create $cache"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { apt-get update -qq >&2; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
[ -n "$kpkg" ] || fail "apt knows no linux-image-amd64"
kver=${kpkg#linux-image-}
kdir=$cache/$kpkg
if [ ! -f "$kdir/.done" ]; then
  say "fetching $kpkg"
  rm -rf "$kdir" "$cache"/*.deb
  (cd "$cache" && apt-get download "$kpkg" >&2) || fail "apt-get download $kpkg failed"
  dpkg-deb -x "$cache/${kpkg}"_*.deb "$kdir" || fail "cannot unpack $kpkg"
  rm -f "$cache/${kpkg}"_*.deb
  # The package ships no modules.dep (made at install time): make it, for modprobe inside.
  "$bb" depmod -b "$kdir" "$kver" || fail "depmod failed"
  touch "$kdir/.done"
fi
vmlinuz=$kdir/boot/vmlinuz-$kver
moddir=$kdir/lib/modules/$kver

# --- the initramfs: busybox, the modules the lane loads, /init -----------------------------------
modules="kvm-amd 9p 9pnet_virtio virtio_pci overlay"
base=$cache/initramfs-$kver.cpio
stamp=$(sha256sum "$0" | cut -c1-16)
if [ ! -f "$base" ] || [ "$(cat "$base.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "building the initramfs"
  tree=$(mktemp -d) || fail "mktemp"
  mkdir -p "$tree"/{bin,dev,proc,sys,newroot,lower,upper,project,lane} "$tree/lib/modules/$kver"
  cp "$bb" "$tree/bin/busybox" || fail "copy busybox"
  for a in sh mount umount mkdir modprobe insmod chroot cat echo sleep poweroff reboot ip \
    grep sed ls mknod hostname uname timeout kill; do ln -s busybox "$tree/bin/$a"; done
  cp "$moddir/modules.dep" "$moddir/modules.builtin" "$tree/lib/modules/$kver/"
  # Each module with the ones it needs (modules.dep); those built in need nothing.
  for m in $modules; do
    f=$(grep -E "(^|/)${m//-/[-_]}\.ko(\.xz)?:" "$moddir/modules.dep" | head -1)
    [ -n "$f" ] || { grep -qE "/${m//-/[-_]}\.ko" "$moddir/modules.builtin" && continue; fail "no module $m in $kpkg"; }
    for k in ${f/:/}; do
      mkdir -p "$tree/lib/modules/$kver/$(dirname "$k")"
      cp "$moddir/$k" "$tree/lib/modules/$kver/$k"
    done
  done
  sed "s/@MODULES@/$modules/" >"$tree/init" <<'EOF'
#!/bin/sh
# The lane's init: modules, the host's / under a tmpfs overlay, the project read-write, then
# the command from /lane/cmd in a chroot; its status goes to the console and /project's share.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "hwkvm-lane(guest): $*" >/dev/console; }
fin() { echo "FARCALL-LANE-STATUS $1" >/dev/console; echo "$1" >/lane-out/status 2>/dev/null; sync; reboot -f; }
for m in @MODULES@; do
  a=""; [ "$m" = kvm-amd ] && a="nested=1"
  modprobe "$m" $a 2>/dev/console || say "modprobe $m failed"
done
mkdir -p /lane-out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 laneout /lane-out || { say "no lane share"; fin 92; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /lower || { say "no host root"; fin 92; }
mount -t tmpfs -o size=75% tmp /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w root /newroot || { say "no overlay"; fin 92; }
. /lane/env
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 project "/newroot$LANE_PROJECT" || { say "no project share"; fin 92; }
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs shm /newroot/dev/shm
mount -t tmpfs tmp /newroot/tmp
ip link set lo up
hostname hwkvm-lane
[ -c /dev/kvm ] || { say "no /dev/kvm (kvm_amd did not load)"; fin 90; }
echo FARCALL-LANE-READY >/dev/console
cp /lane/cmd /newroot/tmp/.lane-cmd
# A host's fd limit, not the kernel's boot default (4096 hard): the tests open thousands.
chroot /newroot /bin/bash -c "ulimit -Hn 65536; ulimit -n 65536; cd \"\$LANE_PROJECT\" && . /tmp/.lane-cmd" </dev/console >/dev/console 2>&1
fin $?
EOF
  chmod +x "$tree/init"
  (cd "$tree" && find . | "$bb" cpio -o -H newc 2>/dev/null) >"$base.tmp" || fail "cpio failed"
  mv "$base.tmp" "$base" && echo "$stamp" >"$base.stamp"
  rm -rf "$tree"
fi

# --- this run: the command and its environment in a second cpio appended to the first ------------
run=$(mktemp -d "$cache/run.XXXXXX") || fail "mktemp"
trap 'rm -rf "$run"' EXIT
mkdir -p "$run/tree/lane" "$run/out"
{
  echo "export LANE_PROJECT=$(printf %q "$project")"
  echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8"
  env | grep -E '^(FARCALL_[A-Z0-9_]*|CI)=' | while IFS='=' read -r k v; do echo "export $k=$(printf %q "$v")"; done
} >"$run/tree/lane/env"
printf '%q ' "$@" >"$run/tree/lane/cmd"
echo >>"$run/tree/lane/cmd"
(cd "$run/tree" && find . | "$bb" cpio -o -H newc 2>/dev/null) >"$run/extra.cpio" || fail "cpio failed"
cat "$base" "$run/extra.cpio" >"$run/initrd" || fail "initrd"

# --- boot ----------------------------------------------------------------------------------------
say "booting $kpkg: $smp vCPU, $mem, phys-bits=$phys_bits, time scale $FARCALL_TIME_SCALE"
t0=$(date +%s)
share="security_model=none,multidevs=remap"
qemu-system-x86_64 -accel tcg,thread=multi -cpu "max,phys-bits=$phys_bits" -smp "$smp" -m "$mem" \
  -nodefaults -no-user-config -display none -no-reboot -serial stdio \
  -kernel "$vmlinuz" -initrd "$run/initrd" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
  -virtfs "local,path=/,mount_tag=hostroot,readonly=on,$share" \
  -virtfs "local,path=$project,mount_tag=project,$share" \
  -virtfs "local,path=$run/out,mount_tag=laneout,$share" \
  </dev/null > >(tee "$run/console" | grep --line-buffered -v -e '^FARCALL-LANE-') &
qemu=$!

status=""
ready=0
while kill -0 "$qemu" 2>/dev/null; do
  sleep 1
  now=$(date +%s)
  if [ $ready = 0 ] && grep -q FARCALL-LANE-READY "$run/console" 2>/dev/null; then
    ready=1
    tr=$now
    say "ready after $((now - t0)) s"
  fi
  if [ $ready = 0 ] && [ $((now - t0)) -ge "$boot_timeout" ]; then
    grep -q FARCALL-LANE-STATUS "$run/console" && break
    kill "$qemu"
    wait "$qemu" 2>/dev/null
    fail "boot timeout ($boot_timeout s)" 91
  fi
  if [ $ready = 1 ] && [ "$run_timeout" -gt 0 ] && [ $((now - tr)) -ge "$run_timeout" ]; then
    kill "$qemu"
    wait "$qemu" 2>/dev/null
    fail "the command ran longer than $run_timeout s" 94
  fi
done
wait "$qemu"
qrc=$?
status=$(cat "$run/out/status" 2>/dev/null)
[ -n "$status" ] || status=$(sed -n 's/.*FARCALL-LANE-STATUS \([0-9]*\).*/\1/p' "$run/console" | tail -1)
if [ -z "$status" ]; then
  [ $qrc -ne 0 ] && [ $ready = 0 ] && fail "QEMU failed (exit $qrc)"
  fail "the VM stopped without the command's status" 93
fi
say "status $status after $(($(date +%s) - t0)) s (boot $((${tr:-$t0} - t0)) s)"
exit "$status"
