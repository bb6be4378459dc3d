#!/usr/bin/env bash
# Creates (or updates) the Python virtual environment for the gRPC client
# test and the serving benchmark: grpcio and its tools, health checking and
# reflection, and the openai client for the HTTP test, at pinned versions
# from PyPI (by package name). Safe to run
# again: it installs only when the pins changed. Prints the venv's python
# path as the last stdout line; progress goes to stderr.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

# Exact pins (protobuf: the runtime grpcio-tools 1.85.1 resolves to).
readonly packages=(
  grpcio==1.85.1
  grpcio-tools==1.85.1
  grpcio-health-checking==1.85.1
  grpcio-reflection==1.85.1
  protobuf==7.36.2
  # The OpenAI-compatible HTTP door's test (tests/http_server_test.py): the
  # official client, and httpx (its transport) for raw requests.
  openai==3.51.0
  httpx==0.28.1
)
cache=${TPSERVE_CACHE:-$PWD/.cache}
venv="$cache/venv-grpc"
python="$venv/bin/python"
stamp="$venv/.tpserve-pins"
want="${packages[*]}"

if [ -x "$python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "python-env: $venv (up to date)" >&2
  echo "$python"
  exit 0
fi

if [ ! -x "$python" ]; then
  echo "python-env: creating $venv" >&2
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" >&2; then
    echo "error: python3 -m venv failed; run scripts/setup.sh first (python3-venv)" >&2
    exit 1
  fi
fi
echo "python-env: installing ${packages[*]}" >&2
if ! "$python" -m pip install --disable-pip-version-check -q "${packages[@]}" >&2; then
  cat >&2 <<MSG
error: could not install ${packages[*]} from PyPI.
  Check network access to PyPI (or your pip index: PIP_INDEX_URL), then rerun
  scripts/python-env.sh.
MSG
  exit 1
fi
echo "$want" >"$stamp"
echo "python-env: $venv (ready)" >&2
echo "$python"
