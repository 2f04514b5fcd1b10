#!/usr/bin/env bash
# Builds and runs the whole test suite from a fresh clone: dependencies, the normal build (CUDA
# targets compiled with nvcc when it is installed; their tests skip without a GPU), then the
# ASan+UBSan and TSan builds, plus a smoke run of the benchmarks (one moment each, no timing).
# The core-only step configures and builds the logical core with no CUDA toolkit visible (nvcc off
# PATH, the toolkit's prefixes ignored by CMake) and runs the core tests, so kvbm::core can never
# come to need the toolkit again.
# The fuzz step runs the trace-parser fuzzer (clang, libFuzzer) for a bounded 60 s.
# The python step builds the package into a fresh virtual environment (pip install .) and runs its
# pytest suite, the stubs check and the adapter example.
# Usage: scripts/test.sh [preset ...]  (default: core-only dev asan tsan fuzz python)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
toolkit_bin=""
[[ -x /usr/local/cuda/bin/nvcc ]] && toolkit_bin=/usr/local/cuda/bin
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/kvbm-ccache}"
jobs="${KVBM_JOBS:-$(nproc)}"
presets=("$@")
((${#presets[@]})) || presets=(core-only dev asan tsan fuzz python)

# PATH without any directory that holds nvcc.
path_without_toolkit() {
  local out="" dir
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ -x "$dir/nvcc" ]] || out="${out:+$out:}$dir"
  done
  echo "$out"
}

core_only() {
  (
    export PATH="$(path_without_toolkit)"
    if command -v nvcc >/dev/null; then echo "core-only: nvcc still on PATH" >&2; exit 1; fi
    cmake --preset core-only --fresh >/dev/null
    cmake --build --preset core-only -j "$jobs"
    # Nothing of the toolkit may reach a compile: no CUDA include path, no NVTX ranges.
    if grep -Eq '/usr/local/cuda|cccl|KVBM_NVTX_ENABLED' build/core-only/compile_commands.json; then
      echo "core-only: a compile command still references the CUDA toolkit" >&2; exit 1
    fi
    ctest --preset core-only -j "$jobs"
  )
}

for preset in "${presets[@]}"; do
  echo "=== kvbm: ${preset} build ==="
  start=$SECONDS
  if [[ "$preset" == python ]]; then
    bash scripts/test-python.sh
    echo "=== kvbm: ${preset} passed in $((SECONDS - start)) s ==="
    continue
  fi
  if [[ "$preset" == fuzz ]]; then
    bash scripts/fuzz.sh 60
    echo "=== kvbm: ${preset} passed in $((SECONDS - start)) s ==="
    continue
  fi
  if [[ "$preset" == core-only ]]; then
    core_only
    echo "=== kvbm: ${preset} passed in $((SECONDS - start)) s ==="
    continue
  fi
  [[ -n "$toolkit_bin" ]] && export PATH="$toolkit_bin:$PATH"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset" -j "$jobs"
  # Benchmarks never run in the suite; a one-moment smoke run catches a crashing workload.
  if [[ "$preset" == dev && -x build/dev/bench/kvbm_bench ]]; then
    build/dev/bench/kvbm_bench --benchmark_min_time=0.001 >/dev/null
    echo "=== kvbm: benchmark smoke run passed ==="
  fi
  # The KV events wire test: a real kvbm-replay stream decoded by pyzmq + msgspec.
  if [[ "$preset" == dev ]]; then
    bash scripts/test-events.sh build/dev
  fi
  echo "=== kvbm: ${preset} passed in $((SECONDS - start)) s ==="
done
