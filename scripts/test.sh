#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up (packages + model),
# format check, CMake build + tests, the conformance suite against llama.cpp
# (built from source), the same tests under AddressSanitizer + UBSan, a
# bounded libFuzzer run, and the Bazel build + tests run with no network.
# Every stage runs even when an earlier one fails; the last line sums them
# up.
#
#   TPSERVE_FUZZ_SECONDS   seconds per fuzz target (default 45)
#   TPSERVE_SKIP           stages to skip, e.g. "asan fuzz" (local use only)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh || { echo "setup failed"; exit 1; }
model=$(scripts/fetch-model.sh | tail -n 1)
export TPSERVE_MODEL="$model"
vocab_dir=$(scripts/fetch-test-data.sh | tail -n 1) || { echo "test data fetch failed"; exit 1; }
export TPSERVE_VOCAB_DIR="$vocab_dir"
# jinja2's renderings of the real chat templates (tests/chat_templates/),
# which chat_template_conformance_test compares the engine with.
cases=$(scripts/chat-template-cases.sh | tail -n 1) || { echo "chat template cases failed"; exit 1; }
export TPSERVE_CHAT_TEMPLATE_CASES="$cases"
jobs=$(nproc)

passed=0
failed=0
failed_stages=()
declare -A skip=()
for s in ${TPSERVE_SKIP:-}; do skip[$s]=1; done

# stage NAME COMMAND...: runs one stage, logs it, counts its result.
stage() {
  local name=$1
  shift
  if [ -n "${skip[$name]:-}" ]; then
    echo "== $name: skipped (TPSERVE_SKIP)"
    return
  fi
  echo "== $name"
  local start=$SECONDS
  if "$@"; then
    echo "== $name: ok ($((SECONDS - start)) s)"
  else
    echo "== $name: FAILED ($((SECONDS - start)) s)"
    failed_stages+=("$name")
    failed=$((failed + 1))
  fi
}

# ctest in DIR (further arguments go to ctest); adds its test counts to the
# totals.
run_ctest() {
  local dir=$1 log
  shift
  log=$(mktemp)
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "$@") 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
  rm -f "$log"
  if [ -n "$line" ]; then
    local f t
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    passed=$((passed + t - f))
    # A failing stage is counted once, through `stage`.
    [ "$f" -gt 0 ] && failed=$((failed + f - 1))
  fi
  return "$rc"
}

cmake_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs"
}

release() {
  mkdir -p build
  # The Python client test's venv (tests/python_client_test.py).
  cmake_build build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPSERVE_WERROR=ON \
    -DTPSERVE_GRPC_PYTHON="$(scripts/python-env.sh | tail -n 1)" &&
    run_ctest build/release -LE conformance
}

conformance() {
  # llama.cpp from the llama-cpp-python sdist, the random-weight models and
  # llama.cpp's outputs on them (cached by a hash of the scripts), then the
  # release build's conformance_test (tests/conformance/README.md).
  local dir
  dir=$(scripts/conformance.sh | tail -n 1) || return 1
  [ -x build/release/tests/conformance_test ] ||
    { echo "conformance: build/release has no conformance_test (cmake stage)"; return 1; }
  TPSERVE_CONFORMANCE_DIR="$dir" run_ctest build/release -L conformance
}

asan() {
  mkdir -p build
  # CUDA stays out: the sanitizer runtime and the CUDA driver do not mix, and
  # the release build already compiles the CUDA code.
  # -O1 (the usual sanitizer setting; asserts stay on): the process-level
  # tests load and run the model in every worker, which at -O0 under ASan
  # takes minutes per server start.
  ASAN_OPTIONS=detect_leaks=1 cmake_build build/asan -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
    -DTPSERVE_SANITIZE=address,undefined -DTPSERVE_CUDA=OFF -DTPSERVE_WERROR=ON &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
      run_ctest build/asan -LE conformance
}

fuzz() {
  mkdir -p build
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPSERVE_FUZZ=ON \
    -DTPSERVE_SANITIZE=address,undefined -DTPSERVE_CUDA=OFF \
    >build/fuzz.configure.log 2>&1 ||
    { cat build/fuzz.configure.log; return 1; }
  scripts/fuzz.sh build/fuzz "${TPSERVE_FUZZ_SECONDS:-45}" &&
    passed=$((passed + 1))
}

bazel_all() {
  # Proof that the Bazel build is offline: it runs in a network namespace
  # whose only interface is loopback (root only; tests serve on 127.0.0.1),
  # and .bazelrc forbids downloads.
  local -a net=()
  if [ "$(id -u)" = 0 ] && unshare -n ip link set lo up 2>/dev/null; then
    net=(unshare -n sh -c 'ip link set lo up && exec "$@"' sh)
    echo "bazel: running in a network namespace with loopback only"
  fi
  local log
  log=$(mktemp)
  "${net[@]}" bazel --batch test //... --test_env=TPSERVE_MODEL="$TPSERVE_MODEL" \
    --test_env=TPSERVE_VOCAB_DIR="$TPSERVE_VOCAB_DIR" \
    --test_env=TPSERVE_CHAT_TEMPLATE_CASES="$TPSERVE_CHAT_TEMPLATE_CASES" \
    --test_output=errors 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(grep -cE "^//[^ ]+ +PASSED" "$log")
  f=$(grep -cE "^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS)" "$log")
  rm -f "$log"
  passed=$((passed + p))
  [ "$f" -gt 0 ] && failed=$((failed + f - 1))
  return "$rc"
}

stage format scripts/check-format.sh
stage layering scripts/check-layering.sh
stage cmake release
stage conformance conformance
stage asan asan
stage fuzz fuzz
stage bazel bazel_all

echo
if [ $failed -gt 0 ]; then
  echo "failed stages: ${failed_stages[*]}"
fi
echo "tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
