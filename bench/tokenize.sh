#!/usr/bin/env bash
# Encodes the same ~64 KiB mixed text with tpserve's tokenizer and with
# Hugging Face `tokenizers` (same SmolLM2 vocabulary, merges and
# pre-tokenizer) in one run, and prints the time ratio; also our load time.
# Usage: bench/tokenize.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
model=${TPSERVE_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
venv=.cache/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q gguf==0.19.0 tokenizers==0.23.3 numpy >/dev/null
cmake --build "$build" --target tokenizer_bench >/dev/null
json=$(TPSERVE_MODEL=$model "$build/bench/tokenizer_bench" --benchmark_format=json 2>/dev/null)
"$venv/bin/python" - "$model" "$json" <<'PY'
import json, sys, time
sys.path.insert(0, "scripts")
from make_tokenizer_golden import smollm2_from_gguf
model, ours = sys.argv[1], json.loads(sys.argv[2])
ours = {b["name"]: b["real_time"] for b in ours["benchmarks"]}
tok = smollm2_from_gguf(model)
unit = open("tests/golden/tokenizer_corpus.json").read()
text = unit * (64 * 1024 // len(unit) + 1)
best = 1e9
for _ in range(5):
    t = time.perf_counter(); tok.encode(text, add_special_tokens=False); best = min(best, time.perf_counter() - t)
print(f"encode 64 KiB: tpserve {ours['BM_Encode64K']:.2f} ms, HF tokenizers {best*1e3:.2f} ms "
      f"(tpserve/HF time ratio {ours['BM_Encode64K']/(best*1e3):.2f})")
# HF has no GGUF loader (ours builds it through the gguf package, which is
# slow), so only our load time is meaningful here.
print(f"load vocabulary and merges from the GGUF: tpserve {ours['BM_LoadTokenizer']:.1f} ms")
PY
