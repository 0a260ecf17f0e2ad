#!/usr/bin/env bash
# What a lent GPU machine runs (scripts/device-pack.sh prepares .device-carry/ and prints this command).
# That machine has no Node.js and no network: the node carried in .device-carry/ runs scripts/gpu-check.mjs
# against the carried addon (built here with nvcc 13, CUDA runtime linked statically).
#
# If that addon cannot run because the machine's driver is older than the CUDA it was built with
# (cudaStatus: "driver too old for this build"), it is rebuilt there with the machine's own nvcc and cmake
# from the tracked sources and the Node-API headers in .device-carry/pkg/include, and the check then runs
# with the time left. SIMCSEPP_DEVICE_REBUILD=1 forces the rebuild (to rehearse it on any machine with nvcc).
#
#   bash scripts/device-run.sh            (from the repository root; results under $OUT when set)
#
# Environment: DEVICE_SECONDS (default 570: everything, rebuild included, inside a 600-second call);
# GPU_CHECK_SLACK (default 150): seconds of DEVICE_SECONDS kept back from gpu-check's budget (a short second
# call with --only can keep fewer).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
carry="$root/.device-carry"
start=$(date +%s)
total="${DEVICE_SECONDS:-570}"
out="${OUT:-}"
say() {
  echo "device-run: $*"
  if [ -n "$out" ]; then echo "device-run: $*" >>"$out/device-run.log"; fi
}
[ -n "$out" ] && mkdir -p "$out"
[ -d "$carry/pkg/dist" ] || { say "$carry/pkg/dist not found: run scripts/device-pack.sh first"; exit 2; }

cd "$carry"
# node is unpacked outside .device-carry/ (86 MB): a rehearsal here would otherwise leave it in the folder that
# the next device call carries, over the call's 64 MiB.
node="${TMPDIR:-/tmp}/simcsepp-device-node"
if [ ! -x "$node" ] || [ node.xz -nt "$node" ]; then
  (xz -d -c node.xz >"$node" 2>/dev/null || python3 -c "import lzma,shutil,sys;shutil.copyfileobj(lzma.open('node.xz'),open(sys.argv[1],'wb'))" "$node") || {
    say "could not decompress node.xz"
    exit 2
  }
  chmod +x "$node"
fi

# Why the carried addon cannot use CUDA, or "ok".
cuda_reason() {
  "$node" --input-type=module -e "const { addon } = await import('./pkg/dist/native.js'); const s = addon.cudaStatus(); console.log(s.available ? 'ok' : s.reason)" 2>&1 | tail -n 1
}
reason="$(cuda_reason)"
say "carried addon: ${reason}"
if [[ "$reason" == "driver too old for this build"* ]] || [ "${SIMCSEPP_DEVICE_REBUILD:-0}" = "1" ]; then
  build="$(mktemp -d)"
  log="${out:-$build}/rebuild.log"
  say "rebuilding the addon with this machine's nvcc ($(nvcc --version 2>/dev/null | tail -n 1)); log: $log"
  jobs="$(nproc 2>/dev/null || echo 4)"
  if cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIMCSEPP_CUDA_MODE=on \
    -DCMAKE_JS_INC="$carry/pkg/include" -DNODE_ADDON_API_DIR="$carry/pkg/include" >"$log" 2>&1 &&
    cmake --build "$build" --parallel "$jobs" >>"$log" 2>&1; then
    built="$(find "$build" -name simcsepp.node -type f | head -n 1)"
    cp "$carry/pkg/build/Release/simcsepp.node" "$carry/pkg/build/Release/simcsepp.node.carried"
    cp "$built" "$carry/pkg/build/Release/simcsepp.node"
    say "rebuilt in $(($(date +%s) - start)) s: $(cuda_reason)"
  else
    say "the rebuild failed (the last lines of $log follow); running with the carried addon"
    tail -n 20 "$log"
  fi
fi

# gpu-check keeps to its budget only roughly (a benchmark under way finishes): 150 s of slack, as the
# 420-second budget of a 570-second call had before the rebuild existed.
left=$((total - ($(date +%s) - start)))
budget=$((left - ${GPU_CHECK_SLACK:-150}))
if [ "$budget" -lt 60 ]; then
  say "only ${left} s left: the checks run with a 60-second budget"
  budget=60
fi
say "gpu-check with --budget-seconds ${budget}"
"$node" ../scripts/gpu-check.mjs --dist pkg/dist --budget-seconds "$budget" "$@"
