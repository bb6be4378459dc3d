#!/usr/bin/env bash
# Creates (or updates) the Python virtual environment of the conformance
# suite (tests/conformance/): the `gguf` writer, safetensors and numpy for the
# model writer and the float64 reference forward, and the runtime
# dependencies of the `llama_cpp` bindings that scripts/build-llama-cpp.sh
# takes from the llama-cpp-python sdist. Exact pins from PyPI, the
# dependencies pinned too. Installs only when the pins changed. Prints the
# venv's python path as the last stdout line; progress goes to stderr.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly packages=(
  # Model writer (llama.cpp's own gguf-py) and HF folders.
  gguf==0.19.0 safetensors==0.8.0 numpy==2.4.6
  # gguf's dependencies.
  pyyaml==6.0.4 tqdm==4.70.1 requests==2.34.2 certifi==2026.10.19.post1
  charset-normalizer==3.5.3 idna==3.20 urllib3==2.8.0
  # llama-cpp-python 0.3.36's dependencies.
  typing-extensions==4.16.0 diskcache==5.6.3 jinja2==3.1.6 markupsafe==3.0.4
)
cache=${TPSERVE_CACHE:-$PWD/.cache}
venv="$cache/venv-conformance"
python="$venv/bin/python"
stamp="$venv/.tpserve-pins"
want="${packages[*]}"

if [ -x "$python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "conformance-env: $venv (up to date)" >&2
  echo "$python"
  exit 0
fi

if [ ! -x "$python" ]; then
  echo "conformance-env: creating $venv" >&2
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" >&2; then
    echo "error: python3 -m venv failed; run scripts/setup.sh first (python3-venv)" >&2
    exit 1
  fi
fi
echo "conformance-env: installing ${packages[*]}" >&2
if ! "$python" -m pip install --disable-pip-version-check -q --no-deps \
    "${packages[@]}" >&2; then
  cat >&2 <<MSG
error: could not install ${packages[*]} from PyPI.
  Check network access to PyPI (or your pip index: PIP_INDEX_URL), then rerun
  scripts/conformance-env.sh.
MSG
  exit 1
fi
echo "$want" >"$stamp"
echo "conformance-env: $venv (ready)" >&2
echo "$python"
