#!/usr/bin/env bash
# Makes everything the conformance suite (tests/conformance/) compares
# against, with no hand steps: builds llama.cpp from the llama-cpp-python
# sdist (scripts/build-llama-cpp.sh), the Python venv
# (scripts/conformance-env.sh), the vocabulary files
# (scripts/fetch-test-data.sh), then the random-weight models (GGUF F16,
# Q8_0 and Q4_K_M by llama.cpp's quantizer, HF folders), llama.cpp's reference
# outputs and the float64 numpy reference of the HF folders.
#
# The result lives in $TPSERVE_CACHE/conformance/<key>/, where <key> hashes
# the scripts that make it, so changing any of them regenerates it (older
# folders are removed). Prints the folder on the last stdout line (progress
# on stderr); point TPSERVE_CONFORMANCE_DIR at it and run conformance_test.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${TPSERVE_CACHE:-$PWD/.cache}
export TPSERVE_CACHE="$cache"
readonly inputs=(
  scripts/conformance.sh scripts/build-llama-cpp.sh scripts/conformance-env.sh
  tests/conformance/make_models.py tests/conformance/llama_cpp_reference.py
  tests/conformance/hf_forward.py
)
key=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
root="$cache/conformance"
dest="$root/$key"
if [ -f "$dest/.complete" ]; then
  echo "conformance: $dest (cached)" >&2
  echo "$dest"
  exit 0
fi

step() {
  local start=$SECONDS
  echo "conformance: $1..." >&2
  shift
  "$@"
  echo "conformance: ... $((SECONDS - start)) s" >&2
}

llama=$(scripts/build-llama-cpp.sh | tail -n 1)
python=$(scripts/conformance-env.sh | tail -n 1)
vocab=$(scripts/fetch-test-data.sh | tail -n 1)

rm -rf "$dest" "$dest.tmp"
mkdir -p "$dest.tmp"
export PYTHONPATH="$llama/python"
export LLAMA_CPP_LIB_PATH="$llama/bin"
export PYTHONDONTWRITEBYTECODE=1
step "writing the models" \
  "$python" tests/conformance/make_models.py "$vocab" "$dest.tmp" >&2
step "llama.cpp reference outputs" \
  "$python" tests/conformance/llama_cpp_reference.py "$dest.tmp" >&2
step "float64 reference of the HF folders" \
  "$python" tests/conformance/hf_forward.py "$dest.tmp" >&2
touch "$dest.tmp/.complete"
# Only the current key is kept.
find "$root" -mindepth 1 -maxdepth 1 ! -name "$key.tmp" -exec rm -rf {} +
mv "$dest.tmp" "$dest"
echo "conformance: $dest" >&2
echo "$dest"
