#!/usr/bin/env bash
# Fetches the sdist of the PyPI package llama-cpp-python (which vendors
# llama.cpp: its sources, test vocabularies and chat templates) into
# $TPSERVE_CACHE/sdist/, checked against its sha256. One copy serves
# scripts/build-llama-cpp.sh and scripts/fetch-test-data.sh. Prints the
# tarball's path on the last stdout line; progress goes to stderr.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly version=0.3.36
readonly package="llama-cpp-python==$version"
readonly sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
cache=${TPSERVE_CACHE:-$PWD/.cache}
sdist_dir="$cache/sdist"
sdist="$sdist_dir/llama_cpp_python-$version.tar.gz"

if [ -f "$sdist" ] && echo "$sha256  $sdist" | sha256sum --check --status; then
  echo "sdist: $sdist (cached)" >&2
  echo "$sdist"
  exit 0
fi
mkdir -p "$sdist_dir"
rm -f "$sdist"
echo "sdist: downloading $package from PyPI (~75 MB)..." >&2
if ! python3 -m pip download --no-deps --no-binary :all: --progress-bar on \
    -d "$sdist_dir" "$package" >&2; then
  echo "error: could not download $package from PyPI; check network access" \
    "to PyPI (or PIP_INDEX_URL) and rerun" >&2
  exit 1
fi
if ! echo "$sha256  $sdist" | sha256sum --check --status; then
  echo "error: $sdist does not match the expected sha256 $sha256" >&2
  exit 1
fi
echo "$sdist"
