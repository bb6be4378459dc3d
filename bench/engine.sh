#!/usr/bin/env bash
# CPU engine speed next to llama.cpp, in one run, same GGUF, same threads:
# prefill tok/s, single-sequence decode tok/s, 8-sequence batch tok/s at 1
# and 2 threads, and the ratios (tpserve / llama.cpp; > 1 means faster).
# Needs llama-cpp-python built from source in .cache/venv:
#   CMAKE_BUILD_PARALLEL_LEVEL=2 .cache/venv/bin/pip install --no-binary \
#     llama-cpp-python llama-cpp-python==0.3.36
# Usage: bench/engine.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
model=${TPSERVE_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
python=${TPSERVE_BENCH_PYTHON:-.cache/venv/bin/python}
cmake --build "$build" --target engine_bench >/dev/null
for threads in 1 2; do
  ours=$("$build/bench/engine_bench" "$model" "$threads")
  ref=$("$python" bench/llama_cpp_bench.py "$model" "$threads")
  python3 - "$ours" "$ref" <<'PY'
import json, sys
ours, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"threads {ours['threads']}:")
for key, name in (("prefill_tok_s", "prefill 128"), ("decode_tok_s", "decode 1 seq"),
                  ("batch8_tok_s", "decode 8 seqs")):
    print(f"  {name:14s} tpserve {ours[key]:8.1f} tok/s   llama.cpp {ref[key]:8.1f} tok/s"
          f"   ratio {ours[key] / ref[key]:.2f}")
PY
done
