#!/usr/bin/env bash
# Builds and runs every libFuzzer target of a fuzz build (configured with
# -DTPSERVE_FUZZ=ON) for a bounded time, starting from its committed seeds.
# New crashes are left in build/fuzz-crashes.
# Usage: scripts/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
seconds=${2:-60}
crashes=build/fuzz-crashes
mkdir -p "$crashes"

# target  seed folders
targets=(
  "gguf_fuzzer tests/fuzz/corpus/gguf tests/golden"
  "tokenizer_fuzzer tests/fuzz/corpus/tokenizer"
  "safetensors_fuzzer tests/fuzz/corpus/safetensors tests/golden/hf_tiny"
  "request_fuzzer tests/fuzz/corpus/request"
  "jinja_fuzzer tests/fuzz/corpus/jinja"
)
names=()
for entry in "${targets[@]}"; do names+=("${entry%% *}"); done
cmake --build "$build" -j "$(nproc)" --target "${names[@]}"

for entry in "${targets[@]}"; do
  read -r target seeds <<<"$entry"
  work=$(mktemp -d)  # New inputs land here, not in the committed corpus.
  echo "fuzz: $target for ${seconds}s"
  status=0
  # shellcheck disable=SC2086  # $seeds is a list of folders.
  ASAN_OPTIONS=detect_leaks=1 "$build/tests/fuzz/$target" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/$target-" -print_final_stats=1 \
    "$work" $seeds >"$work.log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|INFO: seed corpus|stat::number_of_executed_units)" "$work.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$work.log" >&2
    echo "fuzz: $target found a failure; reproducer in $crashes/" >&2
    rm -rf "$work" "$work.log"
    exit 1
  fi
  rm -rf "$work" "$work.log"
done
