#!/usr/bin/env bash
# The GPU check, for a bare GPU machine (CUDA toolkit, CMake and PyTorch
# present; no gRPC, no Debian -dev packages, no network), in about six
# minutes:
#   1. deps     unpack the carried .debs of scripts/gpu-deps.sh (if present)
#   2. build    configure with -DTPSERVE_WITH_GRPC=OFF and build only the
#               CUDA engine, its tests and the GPU benchmark
#   3. ops      backend_ops_test and attention_ops_test: every op on every
#               backend (CPU reference, CPU, CUDA) over odd shapes
#   4. engine   cuda_ops_test: kernels, graphs, NCCL (unique id through a
#               store), the model greedy on CUDA vs the CPU backend (and vs
#               llama.cpp's goldens with the full model), TP=2 on one GPU
#               via Gloo, TP=1 via NCCL
#   5. bench    bench/gpu_bench (synthetic Llama-3-8B) and
#               bench/gpu_torch_bench.py, with their ratios
# Logs and one summary.json go to $OUT (default .cache/gpu-check); the last
# line printed is the summary. Exit status 0 when every stage that ran
# passed; 3 when there is no GPU (the stages up to the build still ran).
#
# Inputs copied along to the GPU machine (ignored paths; 64 MiB in all):
#   .cache/gpu-deps/debs   scripts/gpu-deps.sh (about 3 MB; not the
#                          unpacked .cache/gpu-deps/root)
#   .cache/gpu-model       a model for the engine checks, e.g. the default
#                          model trimmed to fit: python3 scripts/trim_gguf.py
#                          .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
#                          .cache/gpu-model/smollm2-6l.gguf 6   (45 MB)
# Environment: TPSERVE_MODEL (default: the first .gguf of .cache/gpu-model,
# else the default model path), GPU_CHECK_BUILD (build folder, default
# build/gpu), GPU_CHECK_SKIP (stages to skip, e.g. "bench"), JOBS.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
OUT=${OUT:-$root/.cache/gpu-check}
mkdir -p "$OUT"
build=${GPU_CHECK_BUILD:-build/gpu}
jobs=${JOBS:-$(nproc)}
t_start=$SECONDS
declare -A skip=()
for s in ${GPU_CHECK_SKIP:-}; do skip[$s]=1; done
stages_json=""

# stage NAME LOG TIMEOUT COMMAND...: runs COMMAND with a time limit,
# appending to $OUT/LOG, and records the result for summary.json.
stage() {
  local name=$1 log=$2 limit=$3
  shift 3
  if [ -n "${skip[$name]:-}" ]; then
    echo "== $name: skipped"
    stages_json+="\"$name\": {\"status\": \"skipped\"}, "
    return 0
  fi
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS rc
  { echo "== $name: $*"; timeout "$limit" "$@"; } >>"$OUT/$log" 2>&1
  rc=$?
  local status=ok
  if [ $rc -eq 124 ]; then status=timeout; elif [ $rc -ne 0 ]; then status=failed; fi
  echo "== $name: $status ($((SECONDS - start)) s, rc $rc)"
  stages_json+="\"$name\": {\"status\": \"$status\", \"rc\": $rc, \"seconds\": $((SECONDS - start))}, "
  [ "$status" = ok ]
}

summary() {
  local gpu=$1
  python3 - "$OUT" "$gpu" "$((SECONDS - t_start))" "{${stages_json%, }}" <<'EOF' || echo "{\"error\": \"summary failed\"}" | tee "$OUT/summary.json"
import json, os, sys
out, gpu, seconds, stages = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
s = {"gpu": gpu, "seconds": seconds, "stages": stages}
def load(name):
    p = os.path.join(os.environ["GPU_CHECK_WORK"], name)
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
for t in ("backend_ops_test", "attention_ops_test", "cuda_ops_test"):
    g = load(t + ".json")
    if g:
        cases = [c for suite in g.get("testsuites", []) for c in suite.get("testsuite", [])]
        s[t] = {
            "tests": g.get("tests"), "failures": g.get("failures"),
            "skipped": [c["classname"] + "." + c["name"] for c in cases
                        if c.get("result") == "SKIPPED"],
            "failed": [c["classname"] + "." + c["name"] for c in cases
                       if c.get("failures")],
        }
ours, torch = load("gpu_bench.json"), load("torch_bench.json")
if ours:
    s["tpserve"] = ours
if torch:
    s["torch"] = torch
text = json.dumps(s, indent=1)
with open(os.path.join(out, "summary.json"), "w") as f:
    f.write(text + "\n")
print(json.dumps(s))
EOF
}

# Scratch files (JSON results before the summary), inside the build tree.
export GPU_CHECK_WORK="$root/build/gpu-check-work"
mkdir -p "$GPU_CHECK_WORK"
rm -f "$GPU_CHECK_WORK"/*.json "$OUT"/*.log

# ---- 1. Dependencies carried as .debs ------------------------------------
prefix_args=()
if ls .cache/gpu-deps/debs/*.deb >/dev/null 2>&1; then
  # shellcheck source=gpu-deps.sh
  source scripts/gpu-deps.sh
  prefix=$(gpu_deps_prefix "$root/.cache/gpu-deps/debs" "$root/build/gpu-deps-root")
  export CMAKE_PREFIX_PATH="$prefix${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$prefix/lib/x86_64-linux-gnu:$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  prefix_args=(-DCMAKE_PREFIX_PATH="$prefix")
  echo "== deps: $(ls .cache/gpu-deps/debs/*.deb | wc -l) packages unpacked into $prefix"
else
  echo "== deps: none carried (.cache/gpu-deps/debs); using the system's"
fi

# ---- 2. Build (no gRPC, CUDA on) -----------------------------------------
{
  echo "host: $(uname -srm), $(nproc) cores"
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  nvcc --version | tail -1
  cmake --version | head -1
  c++ --version | head -1
} >>"$OUT/build.log" 2>&1
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# CMAKE_POLICY_VERSION_MINIMUM: a CMake 4 (pip's) still reads the Debian
# packages' config files.
stage configure build.log 120 cmake -S . -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DTPSERVE_WITH_GRPC=OFF -DTPSERVE_CUDA=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_Protobuf=ON "${prefix_args[@]}" \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5
grep -E "^(absl|GTest|benchmark|hwy|Gloo|nlohmann_json)_DIR" "$build/CMakeCache.txt" >>"$OUT/build.log" 2>/dev/null
stage build build.log 330 cmake --build "$build" -j "$jobs" \
  --target backend_ops_test attention_ops_test cuda_ops_test gpu_bench

# ---- GPU present? ----------------------------------------------------------
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
if [ -z "$gpu" ]; then
  echo "== no GPU: stopping after the build"
  summary "none"
  exit 3
fi
echo "== GPU: $gpu"

# ---- 3-4. Tests ------------------------------------------------------------
if [ -z "${TPSERVE_MODEL:-}" ]; then
  m=$(ls .cache/gpu-model/*.gguf 2>/dev/null | head -1)
  export TPSERVE_MODEL=${m:-$root/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
fi
echo "== model: $TPSERVE_MODEL"
failed=0
stage ops backend_ops_test.log 120 "$build/tests/backend_ops_test" \
  --gtest_output=json:$GPU_CHECK_WORK/backend_ops_test.json || failed=1
stage attention attention_ops_test.log 60 "$build/tests/attention_ops_test" \
  --gtest_output=json:$GPU_CHECK_WORK/attention_ops_test.json || failed=1
stage engine cuda_ops_test.log 180 "$build/tests/cuda_ops_test" \
  --gtest_output=json:$GPU_CHECK_WORK/cuda_ops_test.json || failed=1

# ---- 5. Benchmarks ---------------------------------------------------------
stage bench bench.log 150 "$build/bench/gpu_bench" \
  --json $GPU_CHECK_WORK/gpu_bench.json || failed=1
if [ -f $GPU_CHECK_WORK/gpu_bench.json ]; then
  stage torch bench.log 150 env PYTHONUNBUFFERED=1 python3 bench/gpu_torch_bench.py \
    --json $GPU_CHECK_WORK/torch_bench.json \
    --compare $GPU_CHECK_WORK/gpu_bench.json || failed=1
fi
summary "$gpu"
exit $failed
