#!/usr/bin/env bash
# The CPU addon built with AddressSanitizer (build-asan/: SIMCSEPP_SANITIZE=address) and the given test files run against it, to find
# out-of-bounds accesses and use-after-free in native code that a normal build survives silently. Not part of CI
# (the build takes ~10 minutes on 2 cores and the tests run several times slower).
#   bash scripts/test-asan.sh [test files...]   (default: the fuzz of the addon boundary and the native kernels)
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(test/addon-fuzz.test.ts test/ops.test.ts test/gemm.test.ts test/column-sums.test.ts test/attention-kernels.test.ts
    test/linear-int8.test.ts test/search-kernels.test.ts test/binary-index.test.ts)
fi
SIMCSEPP_SANITIZE=address SIMCSEPP_CUDA=off SIMCSEPP_BUILD_DIR="$PWD/build-asan" node scripts/build-native.mjs
# node itself is not instrumented: the runtime is preloaded; leaks are not checked (V8 keeps memory to the end).
LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
  SIMCSEPP_ADDON="$PWD/build-asan/Release/simcsepp.node" npx tap "${files[@]}" -R terse --timeout 3600
