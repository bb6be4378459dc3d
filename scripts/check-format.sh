#!/usr/bin/env bash
# Fails when any C++/CUDA source differs from clang-format's Google style.
# `scripts/check-format.sh --fix` rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cc' '*.h' '*.cu' '*.cuh' '*.proto')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "format check failed: run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "format check: ${#files[@]} files clean"
