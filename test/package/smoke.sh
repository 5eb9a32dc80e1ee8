#!/usr/bin/env bash
# The package as a user gets it: npm pack this clone, install the tarball into a fresh project
# in a temporary folder, and there use it as documented — TypeScript with the package's types,
# `npx farcall doctor`, `npx farcall run` on a static program, a guest build with
# farcall_add_program + farcall_generate from node_modules, and one request through a pool
# that calls a backend (and one host-stub call). Prints "package smoke: ok" and exits 0, or
# names the step that failed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/farcall-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
step() { echo "--- package smoke: $* ($((SECONDS - t0)) s)"; }

step "npm pack"
(cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball="$(ls "$work"/farcall-*.tgz)"
echo "$(tar tzf "$tarball" | wc -l) files, $(du -k "$tarball" | cut -f1) KiB packed"
if tar tzf "$tarball" | grep -E '^package/(test|bench|samples|\.ci|native|build)/'; then
  echo "package smoke: the tarball holds files a user does not need (above)"; exit 1
fi

app="$work/app"
mkdir -p "$app"
cp "$root"/test/package/project/* "$app"/
cd "$app"
npm init -y >/dev/null
step "npm install the tarball"
npm install --no-audit --no-fund --loglevel=error "$tarball" typescript@~5.9 @types/node@^20 >/dev/null

step "npx farcall doctor"
npx --no-install farcall doctor

step "guest build (farcall_add_program, farcall_generate from node_modules)"
cmake -S . -B build -G Ninja >/dev/null
cmake --build build >/dev/null

step "npx farcall run"
out="$(npx --no-install farcall run build/guests/hello smoke)"
echo "$out"
[ "$out" = "hello from a VM, smoke" ]

step "tsc with the package's types, then one request through a pool"
npx --no-install tsc --strict --esModuleInterop --skipLibCheck --target ES2022 --module commonjs --outDir out index.ts
out="$(node out/index.js)"
echo "$out"
grep -qx 'refused: InvalidArgument' <<<"$out"
grep -qx 'pool: total=5' <<<"$out"
grep -qx 'host stub: total=7' <<<"$out"
echo "package smoke: ok ($((SECONDS - t0)) s)"
