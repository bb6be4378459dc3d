#!/usr/bin/env bash
# Fails when a source file includes a header from a layer above its own.
# The layers, lowest first (docs/design.md, "Layout"):
#   protos, common  <-  kernels  <-  worker  <-  coordinator  <-  api  <-  cli
# A folder may include its own layer and those below; tests/ and bench/ sit
# on top and may include anything. The serving core (coordinator/) must also
# stay free of gRPC's C++ API and the public proto, which belong to the
# doors (api/) and to WorkerGroup's translation of the worker protocol
# (coordinator/worker_group.* and worker_pool.*).
set -euo pipefail
cd "$(dirname "$0")/.."

layer_of() {
  case "$1" in
    protos|common) echo 0 ;;
    kernels) echo 1 ;;
    worker) echo 2 ;;
    coordinator) echo 3 ;;
    api) echo 4 ;;
    cli) echo 5 ;;
    *) echo "" ;;
  esac
}

status=0
while IFS= read -r file; do
  top=${file%%/*}
  mine=$(layer_of "$top")
  [ -n "$mine" ] || continue
  while IFS= read -r line; do
    inc=${line#*\"}
    inc=${inc%%\"*}
    theirs=$(layer_of "${inc%%/*}")
    [ -n "$theirs" ] || continue
    if [ "$theirs" -gt "$mine" ]; then
      echo "$file: includes \"$inc\" from a higher layer (${inc%%/*}/ over $top/)"
      status=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
done < <(git ls-files 'protos/*' 'common/*' 'kernels/*' 'worker/*' 'coordinator/*' 'api/*' 'cli/*' |
         grep -E '\.(h|cc|cu|cuh)$')

# Wire types stay at the core's edges (see the header comment).
while IFS= read -r file; do
  case "$file" in
    coordinator/worker_group.*|coordinator/worker_pool.*|coordinator/rendezvous_service.*) continue ;;
  esac
  if grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*(<grpc|"tpserve/|"google/protobuf/)' "$file"; then
    echo "$file: the serving core includes a wire type (gRPC or the public proto)"
    status=1
  fi
done < <(git ls-files 'coordinator/*' | grep -E '\.(h|cc)$')

if [ "$status" -ne 0 ]; then
  echo "layering: move the code to the right folder or invert the dependency" >&2
  exit 1
fi
echo "layering: ok"
