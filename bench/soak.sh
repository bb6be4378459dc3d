#!/usr/bin/env bash
# Load and soak benchmark (bench/soak.py): 1,000 mixed-length requests at 32
# concurrency against `tpserve serve`, then the same with a worker killed
# every 20 s. Builds what it needs; extra arguments go to soak.py, e.g.
#   bench/soak.sh --requests 200 --kill-every 10 --tp 1 --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
model=$(scripts/fetch-model.sh 2>/dev/null | tail -n 1)
python=$(scripts/python-env.sh | tail -n 1)
mkdir -p build
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/configure.log 2>&1 ||
  { cat build/configure.log >&2; exit 1; }
cmake --build build/release --target tpserve tpserve-worker -j "$(nproc)" >&2
exec "$python" bench/soak.py --tpserve build/release/cli/tpserve \
  --model "$model" "$@"
