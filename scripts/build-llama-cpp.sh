#!/usr/bin/env bash
# Builds llama.cpp, the reference the conformance suite compares against,
# from the sdist of the PyPI package llama-cpp-python (which vendors it):
# CPU only, Release, shared libllama/libggml. The sdist also carries the
# `llama_cpp` Python bindings, which load the built libllama.so through
# LLAMA_CPP_LIB_PATH (no second build); they reach inference and
# llama_model_quantize (all that the llama-quantize tool runs), so no
# tools are built: llama-quantize would add llama-common, about half the
# build time.
#
# Result, under $TPSERVE_CACHE/llama.cpp-0.3.36/ (printed on the last stdout
# line; progress goes to stderr):
#   bin/      libllama.so, libggml*.so
#   python/   the llama_cpp package (put it on PYTHONPATH and set
#             LLAMA_CPP_LIB_PATH to bin/)
# A stamp makes reruns instant; it names the configure flags, so changing
# them here rebuilds.
#
#   TPSERVE_CACHE        cache folder (default: .cache in the repository)
#   TPSERVE_BUILD_JOBS   parallel compile jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly version=0.3.36  # The sdist scripts/fetch-llama-sdist.sh fetches.
cache=${TPSERVE_CACHE:-$PWD/.cache}
prefix="$cache/llama.cpp-$version"
jobs=${TPSERVE_BUILD_JOBS:-$(nproc)}
# GGML_NATIVE: ggml's kernels for this CPU (AVX2/AVX-512), the ones the
# engine's arithmetic follows. Only what the suite needs is built.
readonly flags=(
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_RPC=OFF
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_COMMON=OFF
)
readonly targets=(llama)
stamp="$prefix/.tpserve-stamp"
want="$version ${flags[*]} ${targets[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  [ -f "$prefix/bin/libllama.so" ]; then
  echo "llama.cpp: $prefix (cached)" >&2
  echo "$prefix"
  exit 0
fi

sdist=$(scripts/fetch-llama-sdist.sh | tail -n 1)

rm -rf "$prefix"
mkdir -p "$prefix"
echo "llama.cpp: unpacking $sdist" >&2
tar -xzf "$sdist" -C "$prefix" --strip-components=1 \
  "llama_cpp_python-$version/vendor/llama.cpp" "llama_cpp_python-$version/llama_cpp"
mv "$prefix/vendor/llama.cpp" "$prefix/src"
rmdir "$prefix/vendor"
mkdir -p "$prefix/python"
mv "$prefix/llama_cpp" "$prefix/python/llama_cpp"

echo "llama.cpp: configuring (${flags[*]})" >&2
start=$SECONDS
if ! cmake -S "$prefix/src" -B "$prefix/build" -G Ninja "${flags[@]}" \
    >"$prefix/configure.log" 2>&1; then
  cat "$prefix/configure.log" >&2
  echo "error: configuring llama.cpp failed (log: $prefix/configure.log)" >&2
  exit 1
fi
echo "llama.cpp: building ${targets[*]} with $jobs jobs (several minutes)..." >&2
# Ninja's [done/total] lines are the progress.
if ! cmake --build "$prefix/build" -j "$jobs" --target "${targets[@]}" >&2; then
  echo "error: building llama.cpp failed" >&2
  exit 1
fi
# llama.cpp puts libraries and programs in build/bin (RPATH points there).
ln -sfn build/bin "$prefix/bin"
[ -f "$prefix/bin/libllama.so" ] ||
  { echo "error: the build made no libllama.so" >&2; exit 1; }
echo "$want" >"$stamp"
echo "llama.cpp: built in $((SECONDS - start)) s: $prefix" >&2
echo "$prefix"
