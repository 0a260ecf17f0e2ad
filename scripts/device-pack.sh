#!/usr/bin/env bash
# Prepares .device-carry/ for a device call (the GPU machine has no Node.js and no network):
#   .device-carry/node.xz                      this machine's node, stripped and xz-compressed
#   .device-carry/pkg/package.json             {"type": "module"} so dist/*.js load as ES modules
#   .device-carry/pkg/dist/                    the compiled TypeScript (npm run build:ts)
#   .device-carry/pkg/build/Release/simcsepp.node   the addon, which must be a CUDA build
#   .device-carry/pkg/node_modules/tokenizers/ index.js, package.json and the linux-x64-gnu binary only:
#                                              dist/index.js imports dist/tokenizer.js, which imports
#                                              `tokenizers` at load time (nothing else outside node:*)
#   .device-carry/pkg/include/                 Node-API's headers (node_api.h, js_native_api*.h) and
#                                              node-addon-api's (napi*.h): scripts/device-run.sh rebuilds
#                                              the addon there with the machine's nvcc when its driver is
#                                              older than the CUDA this addon was built with
# then prints the `run` command line (scripts/device-run.sh). Run from anywhere: scripts/device-pack.sh
# Environment: NODE_BIN (default: `command -v node`), MAX_NODE_XZ_MB (default 25).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
carry=.device-carry
addon=build/Release/simcsepp.node
node_bin="${NODE_BIN:-$(command -v node)}"
max_xz_mb="${MAX_NODE_XZ_MB:-25}"

die() { echo "device-pack: $*" >&2; exit 1; }
[ -f "$addon" ] || die "$addon not found: build it with 'SIMCSEPP_CUDA=on node scripts/build-native.mjs' (nvcc on PATH; without =on a machine with no NVIDIA driver builds the CPU backend only)"
[ -f dist/index.js ] || die "dist/index.js not found: run 'npm run build:ts'"
[ -f dist/bench/losses.js ] || die "dist/bench/losses.js not found: run 'npm run build:ts'"
# A CPU-only build links native/cuda_stub.cpp, whose status reason says "not compiled".
if grep -aq "this build of simcsepp has no CUDA kernels" "$addon"; then
  die "$addon was built without CUDA (cuda_stub.cpp): rebuild with 'SIMCSEPP_CUDA=on node scripts/build-native.mjs' (nvcc on PATH)"
fi
grep -aq "infonce_unfused" "$addon" || echo "device-pack: warning: $addon has no unfused CUDA kernels (stale build?)" >&2
[ "$(find lib -name '*.ts' -newer dist/index.js | head -1)" = "" ] || echo "device-pack: warning: lib/ has files newer than dist/index.js: run 'npm run build:ts'" >&2

rm -rf "$carry"
mkdir -p "$carry/pkg/build/Release" "$carry/pkg/node_modules/tokenizers"

# node: strip symbols, compress. The binary only needs glibc, libstdc++ and libgcc_s.
tmp="$(mktemp)"
cp "$node_bin" "$tmp"
strip --strip-all "$tmp" 2>/dev/null || echo "device-pack: warning: strip failed, packing unstripped" >&2
xz -9e -T0 -c "$tmp" > "$carry/node.xz"
rm -f "$tmp"
xz_bytes=$(stat -c %s "$carry/node.xz")
[ "$xz_bytes" -le $((max_xz_mb * 1024 * 1024)) ] || die "node.xz is $((xz_bytes / 1024 / 1024)) MiB, over ${max_xz_mb} MiB"

printf '{ "name": "simcsepp-device-carry", "private": true, "type": "module" }\n' > "$carry/pkg/package.json"
cp -r dist "$carry/pkg/dist"
find "$carry/pkg/dist" -name '*.map' -delete
cp "$addon" "$carry/pkg/build/Release/simcsepp.node"
tok=node_modules/tokenizers
if [ -f "$tok/tokenizers.linux-x64-gnu.node" ]; then
  cp "$tok/index.js" "$tok/package.json" "$tok/tokenizers.linux-x64-gnu.node" "$carry/pkg/node_modules/tokenizers/"
else
  echo "device-pack: warning: $tok/tokenizers.linux-x64-gnu.node not found: gpu-check falls back to the leaf modules" >&2
fi

# Headers for a rebuild on the device (scripts/device-run.sh): Node-API's, from this node's installation.
node_include="$(cd "$(dirname "$(readlink -f "$node_bin")")/../include/node" 2>/dev/null && pwd || true)"
[ -n "$node_include" ] && [ -f "$node_include/node_api.h" ] || die "Node-API headers not found next to $node_bin (expected ../include/node/node_api.h)"
mkdir -p "$carry/pkg/include"
cp "$node_include"/node_api.h "$node_include"/node_api_types.h "$node_include"/js_native_api.h "$node_include"/js_native_api_types.h "$carry/pkg/include/"
addon_api="$(node -p "require('node-addon-api').include_dir")"
cp "$addon_api"/napi.h "$addon_api"/napi-inl.h "$addon_api"/napi-inl.deprecated.h "$carry/pkg/include/"

echo "device-pack: $carry contents:"
du -ab "$carry" | sort -k2 | awk '$1 > 100000 { printf "  %10d  %s\n", $1, $2 }'
carry_bytes=$(du -sb "$carry" | cut -f1)
tracked_bytes=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
untracked_bytes=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
total=$((carry_bytes + tracked_bytes + untracked_bytes))
echo "device-pack: carry ${carry_bytes} B + tracked ${tracked_bytes} B + untracked ${untracked_bytes} B = ${total} B ($((total / 1024 / 1024)) MiB of the 64 MiB limit)"
[ "$total" -le $((64 * 1024 * 1024)) ] || die "over the 64 MiB limit of a device call"

cat <<'EOF'
device-pack: run it with (carry: [".device-carry"], timeout_s: 600):
bash scripts/device-run.sh
EOF
