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

readonly package="llama-cpp-python==0.3.36"
readonly sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
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
# The sdist is kept in $cache/sdist/, shared with scripts/build-llama-cpp.sh.
sdist="$cache/sdist/llama_cpp_python-${package#*==}.tar.gz"
if [ -f "$sdist" ] && echo "$sha256  $sdist" | sha256sum --check --status; then
  echo "test data: using $sdist" >&2
else
  mkdir -p "$cache/sdist"
  rm -f "$sdist"
  echo "test data: downloading the $package sdist from PyPI (~75 MB)..." >&2
  if ! python3 -m pip download --no-deps --no-binary :all: --progress-bar on \
      -d "$cache/sdist" "$package" >&2; then
    echo "error: could not download $package from PyPI; check network access" \
      "to PyPI (or PIP_INDEX_URL) and rerun scripts/fetch-test-data.sh" >&2
    exit 1
  fi
fi
if ! echo "$sha256  $sdist" | sha256sum --check --status; then
  echo "error: $sdist does not match the expected sha256 $sha256" >&2
  exit 1
fi
mkdir -p "$dest"
patterns=()
for v in "${vocabs[@]}"; do patterns+=("*/vendor/llama.cpp/models/ggml-vocab-$v.gguf*"); done
tar -xzf "$sdist" -C "$tmp" --wildcards "${patterns[@]}"
find "$tmp" -path "*/models/ggml-vocab-*" -type f -exec cp {} "$dest/" \;
complete || { echo "error: the sdist lacks some vocabulary test files" >&2; exit 1; }
echo "test data: $dest" >&2
echo "$dest"
