#!/usr/bin/env bash
# Opens the default model with tpserve's reader and with the `gguf` Python
# package (llama.cpp's reference reader) in one run and prints the ratio.
# Usage: bench/gguf_open.sh [BUILD_DIR]   (after scripts/test.sh or a build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
model=${TPSERVE_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
venv=.cache/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q gguf==0.19.0 numpy >/dev/null
ours_ms=$(TPSERVE_MODEL=$model "$build/bench/gguf_bench" --benchmark_format=json \
  | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["real_time"])')
ref_ms=$("$venv/bin/python" - "$model" <<'PY'
import sys, time, gguf
best = 1e9
for _ in range(5):
    t = time.perf_counter(); gguf.GGUFReader(sys.argv[1]); best = min(best, time.perf_counter() - t)
print(best * 1e3)
PY
)
python3 -c "print(f'open+validate {\"$model\"}: tpserve {$ours_ms:.2f} ms, gguf.GGUFReader {$ref_ms:.2f} ms, speedup x{$ref_ms/$ours_ms:.1f}')"
