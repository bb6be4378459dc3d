#!/usr/bin/env bash
# The main job on the default model, from a fresh machine: set-up (packages +
# model), build `tpserve`, run it. With no arguments it describes the default
# model and generates a continuation with it; otherwise the arguments go to
# `tpserve` as they are, e.g.
#   scripts/run.sh describe --json --model path/to/model.gguf
#   scripts/run.sh generate --model path/to/model.gguf --tp 3 "Hello"
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >&2
model=$(scripts/fetch-model.sh 2>/dev/null | tail -n 1)
echo "build: cmake (build/release)..." >&2
mkdir -p build
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/configure.log 2>&1 ||
  { cat build/configure.log >&2; exit 1; }
cmake --build build/release --target tpserve -j "$(nproc)" >&2

if [ $# -eq 0 ]; then
  build/release/coordinator/tpserve describe --model "$model"
  echo
  exec build/release/coordinator/tpserve generate --model "$model" \
    --max-tokens 48 "The capital of France is"
fi
exec build/release/coordinator/tpserve "$@"
