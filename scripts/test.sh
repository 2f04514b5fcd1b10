#!/usr/bin/env bash
# Builds and runs the whole test suite from a fresh clone: dependencies, the normal build (CUDA
# targets compiled with nvcc when it is installed; their tests skip without a GPU), then the
# ASan+UBSan and TSan builds. Usage: scripts/test.sh [preset ...]  (default: dev asan tsan)
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
  echo "=== kvbm: ${preset} passed in $((SECONDS - start)) s ==="
done
