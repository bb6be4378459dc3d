#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test vectors (vocabulary-only GGUF files with
# .inp/.out pairs) from the sdist of the PyPI package llama-cpp-python, which
# vendors llama.cpp (kept in $TPSERVE_CACHE/sdist/, which
# scripts/build-llama-cpp.sh shares). They are test inputs, never committed.
# Prints the folder on the last line of stdout (progress goes to stderr).
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly vocabs=(llama-spm llama-bpe gpt-2 qwen2)
cache=${TPSERVE_CACHE:-$PWD/.cache}
dest="$cache/testdata/llama-vocab"

complete() {
  for v in "${vocabs[@]}"; do
    for ext in "" .inp .out; do
      [ -f "$dest/ggml-vocab-$v.gguf$ext" ] || return 1
    done
  done
}

if complete; then
  echo "test data: $dest (cached)" >&2
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sdist=$(scripts/fetch-llama-sdist.sh | tail -n 1)
mkdir -p "$dest"
patterns=()
for v in "${vocabs[@]}"; do patterns+=("*/vendor/llama.cpp/models/ggml-vocab-$v.gguf*"); done
tar -xzf "$sdist" -C "$tmp" --wildcards "${patterns[@]}"
find "$tmp" -path "*/models/ggml-vocab-*" -type f -exec cp {} "$dest/" \;
complete || { echo "error: the sdist lacks some vocabulary test files" >&2; exit 1; }
echo "test data: $dest" >&2
echo "$dest"
