#!/usr/bin/env bash
# Checks that the C++/CUDA sources (native/**/*.{h,cpp}, kernels/*.{cu,cuh}, emulator/**) are formatted with the
# repository's .clang-format. Lists the files that are not and exits 1; with --fix, rewrites them.
# Installs nothing: without clang-format on PATH it says so and exits 0 (CI installs clang-format).
# Usage: bash scripts/check-format-native.sh [--fix]
set -euo pipefail

cd "$(dirname "$0")/.."
fix=0
case "${1:-}" in
  --fix) fix=1 ;;
  "") ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

if ! command -v clang-format >/dev/null 2>&1; then
  echo "check-format-native: clang-format is not installed (e.g. apt-get install clang-format); nothing checked."
  echo "skipped: clang-format not installed"
  exit 0
fi

mapfile -t files < <(find native -type f \( -name '*.h' -o -name '*.cpp' \); find kernels -maxdepth 1 -type f \( -name '*.cu' -o -name '*.cuh' \); find emulator -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' \))
if [ "$fix" = 1 ]; then
  clang-format -i --style=file "${files[@]}"
  echo "check-format-native: formatted ${#files[@]} files with $(clang-format --version)"
  exit 0
fi

# One clang-format process over every file (a process per file took most of `npm run lint`'s time); only when it finds
# something is each file checked alone, to name them.
if clang-format --dry-run --Werror --style=file "${files[@]}" >/dev/null 2>&1; then
  echo "check-format-native: ${#files[@]} files formatted"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror --style=file "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ "${#bad[@]}" -gt 0 ]; then
  echo "check-format-native: ${#bad[@]} of ${#files[@]} files are not clang-formatted:"
  printf '  %s\n' "${bad[@]}"
  echo "fix with: bash scripts/check-format-native.sh --fix"
  exit 1
fi
echo "check-format-native: ${#files[@]} files formatted"
