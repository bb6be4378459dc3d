#!/usr/bin/env bash
# The main job on the default model, from a fresh machine: set-up (packages +
# model), build `tpserve` and `tpserve-worker`, then start the server
# (coordinator + 3 tensor-parallel worker processes) on the default model,
# send it a prompt and a chat message over gRPC, and stop it. With arguments,
# they go to `tpserve` as they are, e.g.
#   scripts/run.sh serve --model path/to/model.gguf --tp 3 --listen 0.0.0.0:50051
#   scripts/run.sh generate --server 127.0.0.1:50051 "Hello"
#   scripts/run.sh generate --model path/to/model.gguf --tp 3 "Hello"
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >&2
model=$(scripts/fetch-model.sh 2>/dev/null | tail -n 1)
echo "build: cmake (build/release)..." >&2
mkdir -p build
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/configure.log 2>&1 ||
  { cat build/configure.log >&2; exit 1; }
cmake --build build/release --target tpserve tpserve-worker -j "$(nproc)" >&2
tpserve=build/release/cli/tpserve

if [ $# -gt 0 ]; then
  exec "$tpserve" "$@"
fi

# Start the server; it prints "tpserve ready on HOST:PORT" once every rank
# has loaded its shard.
out=$(mktemp)
"$tpserve" serve --model "$model" --tp 3 --listen 127.0.0.1:0 >"$out" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 300); do
  grep -q "tpserve ready on" "$out" && break
  kill -0 $server 2>/dev/null || { echo "the server failed to start" >&2; exit 1; }
  sleep 0.2
done
address=$(sed -n 's/^tpserve ready on //p' "$out")
[ -n "$address" ] || { echo "the server did not become ready" >&2; exit 1; }

echo "== generate --server $address" >&2
"$tpserve" generate --server "$address" --max-tokens 48 "The capital of France is"
echo "== generate --server $address --chat" >&2
"$tpserve" generate --server "$address" --chat --max-tokens 64 \
  "What is the capital of France? Answer in one sentence."
