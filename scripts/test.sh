#!/usr/bin/env bash
# Builds and runs the whole test suite from a fresh clone: dependencies, the normal build (CUDA
# targets compiled with nvcc when it is installed; their tests skip without a GPU), then the
# ASan+UBSan and TSan builds, plus a smoke run of the benchmarks (one moment each, no timing).
# Usage: scripts/test.sh [preset ...]  (default: dev asan tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/kvbm-ccache}"
jobs="${KVBM_JOBS:-$(nproc)}"
presets=("$@")
((${#presets[@]})) || presets=(dev asan tsan)
for preset in "${presets[@]}"; do
  echo "=== kvbm: ${preset} build ==="
  start=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset" -j "$jobs"
  # Benchmarks never run in the suite; a one-moment smoke run catches a crashing workload.
  if [[ "$preset" == dev && -x build/dev/bench/kvbm_bench ]]; then
    build/dev/bench/kvbm_bench --benchmark_min_time=0.001 >/dev/null
    echo "=== kvbm: benchmark smoke run passed ==="
  fi
  echo "=== kvbm: ${preset} passed in $((SECONDS - start)) s ==="
done
