#!/usr/bin/env bash
# Serving under load next to llama.cpp's server, in one run, same GGUF, same
# thread count: N concurrent streaming clients (N = 1, 4, 16) against
# `tpserve serve --tp 1` (gRPC GenerateStream) and llama-cpp-python's
# OpenAI-compatible server (streamed /v1/completions), one side at a time;
# aggregate output tok/s, time to first token and inter-token latency
# p50/p99, and the ratios tpserve / llama.cpp (bench/serve_bench.py).
#
# Usage: bench/serve.sh [BUILD_DIR]          (default build/release)
#   TPSERVE_BIN               tpserve binary to use as is (default: build
#                             BUILD_DIR's tpserve and tpserve-worker)
#   TPSERVE_MODEL             model (default: scripts/fetch-model.sh's)
#   TPSERVE_BENCH_THREADS     threads of each server (default 2)
#   TPSERVE_BENCH_CLIENTS     concurrent client counts (default 1,4,16)
#   TPSERVE_BENCH_REQUESTS    requests per client (default 8)
#   TPSERVE_BENCH_MAX_TOKENS  output tokens per request (default 64)
#   TPSERVE_BENCH_EOG_BIAS    1: bias llama.cpp's end-of-generation tokens
#                             away (needed when a reply would end early)
#   TPSERVE_LLAMA_VENV        venv with llama-cpp-python 0.3.36 built from
#                             source and its server's packages (default
#                             $TPSERVE_CACHE/venv, the one bench/engine.sh
#                             uses); made here when it lacks them (the
#                             build takes ~15 minutes on 2 cores)
#   TPSERVE_CACHE             cache folder (default: .cache)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
cache=${TPSERVE_CACHE:-$PWD/.cache}
threads=${TPSERVE_BENCH_THREADS:-2}
clients=${TPSERVE_BENCH_CLIENTS:-1,4,16}
requests=${TPSERVE_BENCH_REQUESTS:-8}
max_tokens=${TPSERVE_BENCH_MAX_TOKENS:-64}
llama_venv=${TPSERVE_LLAMA_VENV:-$cache/venv}
model=${TPSERVE_MODEL:-$(scripts/fetch-model.sh | tail -n 1)}

if [ -n "${TPSERVE_BIN:-}" ]; then
  bin=$TPSERVE_BIN
else
  cmake --build "$build" --target tpserve tpserve-worker >/dev/null
  bin=$build/cli/tpserve
fi
grpc_python=$(scripts/python-env.sh | tail -n 1)

# llama.cpp's side. Built from source with explicit AVX-512/VNNI and no
# AMX (a native build picks AMX on Sapphire Rapids, which crashes there);
# CMAKE_ARGS overrides.
llama_python=$llama_venv/bin/python
if [ ! -x "$llama_python" ]; then
  echo "serve: creating $llama_venv" >&2
  python3 -m venv "$llama_venv" >&2
fi
if ! "$llama_python" -c "import llama_cpp" 2>/dev/null; then
  echo "serve: building llama-cpp-python 0.3.36 from source into $llama_venv" >&2
  CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
-DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON"} \
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$llama_python" -m pip install --disable-pip-version-check --no-binary \
    llama-cpp-python llama-cpp-python==0.3.36 >&2
fi
# The packages of its [server] extra, installed directly (installing the
# extra would rebuild llama-cpp-python).
if ! "$llama_python" -c "import llama_cpp.server.app" 2>/dev/null; then
  echo "serve: installing llama-cpp-python's server packages into $llama_venv" >&2
  "$llama_python" -m pip install --disable-pip-version-check -q uvicorn==0.54.0 \
    fastapi==0.163.2 pydantic-settings==2.16.3 sse-starlette==3.7.0 \
    starlette-context==0.3.6 PyYAML >&2
fi
# llama.cpp's server has no ignore_eos. The default prompts run greedy past
# 64 tokens without one, so nothing is needed; with TPSERVE_BENCH_EOG_BIAS=1
# every end-of-generation token id gets logit_bias -100 instead (which costs
# llama-cpp-python a Python logits callback per token).
eog_ids=""
if [ "${TPSERVE_BENCH_EOG_BIAS:-0}" = 1 ]; then
  eog_ids=$("$llama_python" - "$model" <<'PY'
import sys
import llama_cpp
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
vocab = llama_cpp.llama_model_get_vocab(llm.model)
n = llama_cpp.llama_vocab_n_tokens(vocab)
print(",".join(str(t) for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)))
PY
  )
fi

logs=$(mktemp -d)
tp_pid=""
llama_pid=""
stop_servers() {
  local rc=0
  if [ -n "$tp_pid" ]; then
    kill -TERM "$tp_pid" 2>/dev/null || true
    wait "$tp_pid" || rc=$?
    [ "$rc" = 0 ] || echo "serve: tpserve exited $rc after SIGTERM; log: $logs/tpserve.log" >&2
    tp_pid=""
  fi
  if [ -n "$llama_pid" ]; then
    kill -TERM "$llama_pid" 2>/dev/null || true
    wait "$llama_pid" 2>/dev/null || true
    llama_pid=""
  fi
  return "$rc"
}
trap 'stop_servers || true' EXIT

"$bin" serve --model "$model" --tp 1 --listen 127.0.0.1:0 --threads "$threads" \
  >"$logs/tpserve.out" 2>"$logs/tpserve.log" &
tp_pid=$!

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$llama_python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" \
  --n_threads "$threads" --n_threads_batch "$threads" --n_ctx 2048 \
  --interrupt_requests false --logits_all false --verbose false \
  >"$logs/llama.log" 2>&1 &
llama_pid=$!

# Both ready within 3 minutes.
address=""
llama_ready=""
for _ in $(seq 360); do
  if [ -z "$address" ]; then
    address=$(sed -n 's/^tpserve ready on //p' "$logs/tpserve.out" | head -n 1)
    kill -0 "$tp_pid" 2>/dev/null ||
      { echo "serve: tpserve exited before ready:" >&2; tail -20 "$logs/tpserve.log" >&2; exit 1; }
  fi
  kill -0 "$llama_pid" 2>/dev/null ||
    { echo "serve: llama.cpp server exited:" >&2; tail -20 "$logs/llama.log" >&2; exit 1; }
  if [ -z "$llama_ready" ] && python3 -c "import urllib.request
urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=2)" 2>/dev/null; then
    llama_ready=1
  fi
  [ -n "$address" ] && [ -n "$llama_ready" ] && break
  sleep 0.5
done
[ -n "$address" ] || { echo "serve: tpserve not ready in 3 minutes; log: $logs" >&2; exit 1; }
[ -n "$llama_ready" ] || { echo "serve: llama.cpp not ready in 3 minutes; log: $logs" >&2; exit 1; }
echo "serve: tpserve on $address, llama.cpp on 127.0.0.1:$port, $threads threads each;" \
  "llama.cpp EOG ids biased away: ${eog_ids:-none}" >&2

"$grpc_python" bench/serve_bench.py --tpserve "$address" \
  --llama "http://127.0.0.1:$port" --llama-eog-ids "$eog_ids" --clients "$clients" \
  --requests "$requests" --max-tokens "$max_tokens" --threads "$threads"
stop_servers
rm -rf "$logs"
