#!/usr/bin/env bash
# Collects the Debian packages the CUDA engine build needs besides CUDA
# itself (Abseil, GoogleTest, Google Benchmark, Highway, Gloo and its
# runtime libraries, nlohmann-json), for a bare GPU machine that has CUDA,
# CMake and PyTorch but no -dev packages and no network.
#
#   scripts/gpu-deps.sh [DIR]    (default .cache/gpu-deps)
#
# Writes DIR/debs/*.deb (apt-get download: compressed, a few MB, what a
# GPU machine needs) and unpacks them into DIR/root (dpkg -x) so the build
# can be tried here too. On the GPU machine, scripts/gpu-check.sh unpacks
# the debs itself and points CMake (CMAKE_PREFIX_PATH) and the loader
# (LD_LIBRARY_PATH) at the result; see `gpu_deps_prefix` below, which it
# sources.

# Headers + CMake configs (-dev) and the shared libraries they link to.
GPU_DEPS_PACKAGES=(
  libabsl-dev libabsl20220623
  libgtest-dev libgmock-dev
  libbenchmark-dev libbenchmark1debian
  libhwy-dev libhwy1
  libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-3-200 libnl-route-3-200
  nlohmann-json3-dev
)

# gpu_deps_prefix DEBS_DIR ROOT: unpacks every .deb of DEBS_DIR into ROOT
# and rewrites the absolute /usr paths in their CMake files to ROOT/usr
# (Gloo's config names /usr/lib/libgloo.so.0.5.0 outright). Prints ROOT/usr.
gpu_deps_prefix() {
  local debs=$1 root=$2
  mkdir -p "$root"
  local d
  for d in "$debs"/*.deb; do dpkg -x "$d" "$root"; done
  # Only files that name /usr in a string; each config's "/usr move"
  # fallbacks keep working since both sides of their comparison change.
  grep -rlZ --include='*.cmake' '"/usr/' "$root/usr" 2>/dev/null |
    xargs -0 -r sed -i "s#\"/usr/#\"$root/usr/#g"
  echo "$root/usr"
}

# Sourced by gpu-check.sh for gpu_deps_prefix only (and without changing
# its shell options).
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-.cache/gpu-deps}
mkdir -p "$dir/debs"
dir=$(cd "$dir" && pwd)
if ! apt-get download --print-uris libabsl-dev >/dev/null 2>&1; then
  echo "gpu-deps: apt has no package lists; run 'apt-get update' first" >&2
  exit 1
fi
(cd "$dir/debs" && rm -f ./*.deb && apt-get download -q "${GPU_DEPS_PACKAGES[@]}") >&2
rm -rf "$dir/root"
prefix=$(gpu_deps_prefix "$dir/debs" "$dir/root")
echo "gpu-deps: $(ls "$dir/debs" | wc -l) packages, $(du -sh "$dir/debs" | cut -f1) of .debs in $dir/debs" >&2
echo "gpu-deps: unpacked prefix $prefix (CMAKE_PREFIX_PATH)" >&2
echo "$dir"
