#!/usr/bin/env bash
# Fetches llama.cpp's test data from the sdist of the PyPI package
# llama-cpp-python, which vendors llama.cpp (kept in $TPSERVE_CACHE/sdist/,
# which scripts/build-llama-cpp.sh shares). They are test inputs, never
# committed:
#   $TPSERVE_CACHE/testdata/llama-vocab/     tokenizer test vectors
#       (vocabulary-only GGUF files with .inp/.out pairs)
#   $TPSERVE_CACHE/testdata/chat-templates/  the Hugging Face chat templates
#       llama.cpp tests against (models/templates/*.jinja, flat)
# Prints the vocabulary folder on the last line of stdout (callers rely on
# it; the templates are its sibling, $(dirname "$vocab_dir")/chat-templates).
# Progress goes to stderr.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly vocabs=(llama-spm llama-bpe gpt-2 qwen2)
cache=${TPSERVE_CACHE:-$PWD/.cache}
dest="$cache/testdata/llama-vocab"
templates="$cache/testdata/chat-templates"
# Written last, so an interrupted extraction is never taken for a complete one.
templates_stamp="$templates/.complete"

complete() {
  for v in "${vocabs[@]}"; do
    for ext in "" .inp .out; do
      [ -f "$dest/ggml-vocab-$v.gguf$ext" ] || return 1
    done
  done
  [ -f "$templates_stamp" ]
}

if complete; then
  echo "test data: $dest, $templates (cached)" >&2
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sdist=$(scripts/fetch-llama-sdist.sh | tail -n 1)
patterns=("*/vendor/llama.cpp/models/templates/*.jinja")
for v in "${vocabs[@]}"; do patterns+=("*/vendor/llama.cpp/models/ggml-vocab-$v.gguf*"); done
tar -xzf "$sdist" -C "$tmp" --wildcards "${patterns[@]}"
mkdir -p "$dest"
find "$tmp" -path "*/models/ggml-vocab-*" -type f -exec cp {} "$dest/" \;
# Rebuilt from scratch so that templates a newer sdist dropped do not linger.
rm -rf "$templates"
mkdir -p "$templates"
find "$tmp" -path "*/models/templates/*.jinja" -type f -exec cp {} "$templates/" \;
if ! compgen -G "$templates/*.jinja" >/dev/null; then
  echo "error: the sdist has no chat templates (models/templates/*.jinja)" >&2
  exit 1
fi
touch "$templates_stamp"
complete || { echo "error: the sdist lacks some vocabulary test files" >&2; exit 1; }
echo "test data: $dest, $templates ($(find "$templates" -name '*.jinja' | wc -l) templates)" >&2
echo "$dest"
