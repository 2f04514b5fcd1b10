#!/usr/bin/env bash
# The GPU check: everything kvbm can only prove on a real device, in one run (< 8 min on one GPU).
#   1. builds the CUDA targets for the GPU that is present (CMAKE_CUDA_ARCHITECTURES=native), or
#      uses a bundle prepared elsewhere with --prepare (for GPU machines that cannot install the
#      Debian build dependencies: nothing to fetch there);
#   2. runs every CUDA test (kvbm_cuda_tests), then again under compute-sanitizer's memcheck,
#      racecheck and synccheck where compute-sanitizer is installed;
#   3. runs the device benchmarks (kvbm_cuda_bench: table sync and TransferEngine against
#      cudaMemcpyAsync of the same bytes, each with its in-run floor);
#   4. writes one summary file ($KVBM_GPU_CHECK_OUT, default build/gpu-check/summary.txt).
# On a machine without a GPU it says so and exits 0 (there is nothing to check).
#
# Usage:
#   scripts/gpu-check.sh            run the check (builds first unless a bundle is present)
#   scripts/gpu-check.sh --prepare  build a self-contained bundle in build/gpu-check/bundle for
#                                   sm_90 (H100/H200; KVBM_GPU_ARCH overrides) on this machine,
#                                   to carry to a GPU machine that has no build dependencies
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work="$root/build/gpu-check"
bundle="$work/bundle"
summary="${KVBM_GPU_CHECK_OUT:-$work/summary.txt}"
mkdir -p "$work" "$(dirname "$summary")"
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"

build_cuda_targets() {  # $1: build dir, $2: CUDA architectures
  cmake -S "$root" -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVBM_CUDA=ON \
    "-DCMAKE_CUDA_ARCHITECTURES=$2" -DKVBM_BUILD_TOOLS=OFF >/dev/null &&
    cmake --build "$1" -j "$(nproc)" --target kvbm_cuda_tests kvbm_cuda_bench
}

if [[ "${1:-}" == --prepare ]]; then
  bash scripts/install-deps.sh
  arch="${KVBM_GPU_ARCH:-90}"
  build_cuda_targets "$work/build-sm$arch" "$arch" || exit 1
  rm -rf "$bundle" && mkdir -p "$bundle/lib"
  cp "$work/build-sm$arch/tests/cuda/kvbm_cuda_tests" "$work/build-sm$arch/bench/kvbm_cuda_bench" \
    "$bundle/"
  # Shared libraries from Debian's dev packages that a bare GPU image lacks (never libc or the
  # CUDA driver/runtime, which the GPU machine has).
  for bin in "$bundle"/kvbm_cuda_tests "$bundle"/kvbm_cuda_bench; do
    ldd "$bin" | awk '/=> \//{print $3}' |
      grep -E 'libabsl|libxxhash|libbenchmark|libgtest|libgmock' | xargs -r cp -n -t "$bundle/lib"
  done
  echo "sm_$arch" >"$bundle/ARCH"
  echo "gpu-check: bundle ready in $bundle ($(du -sh "$bundle" | cut -f1)); carry build/gpu-check/bundle"
  exit 0
fi

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "gpu-check: no GPU on this machine (nvidia-smi finds none); nothing to check" | tee "$summary"
  exit 0
fi

status=0
{
  echo "kvbm gpu-check $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} >"$summary"

if [[ -x "$bundle/kvbm_cuda_tests" ]]; then
  tests="$bundle/kvbm_cuda_tests"
  bench="$bundle/kvbm_cuda_bench"
  export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "binaries: prepared bundle ($(cat "$bundle/ARCH"))" >>"$summary"
else
  if ! build_cuda_targets "$work/build-native" native >"$work/build.log" 2>&1; then
    echo "build: FAILED (see $work/build.log)" | tee -a "$summary"
    tail -20 "$work/build.log"
    exit 1
  fi
  tests="$work/build-native/tests/cuda/kvbm_cuda_tests"
  bench="$work/build-native/bench/kvbm_cuda_bench"
  echo "binaries: built here for the present GPU (native)" >>"$summary"
fi

run_step() {  # $1: name, rest: command; appends PASS/FAIL and the last lines to the summary
  local name=$1 log="$work/$1.log"
  shift
  if timeout 300 "$@" >"$log" 2>&1; then
    echo "$name: PASS" >>"$summary"
  else
    echo "$name: FAIL (exit $?)" >>"$summary"
    status=1
  fi
  tail -5 "$log" | sed 's/^/    /' >>"$summary"
}

# A skipped test would mean the device was not usable: count it as a failure here.
run_step cuda-tests bash -c "'$tests' --gtest_brief=1 && ! '$tests' | grep -q '\[  SKIPPED \]'"
sanitizer=$(command -v compute-sanitizer ||
  ls /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda/bin/compute-sanitizer \
    2>/dev/null | head -1)
if [[ -n "$sanitizer" ]]; then
  # CudaError.* provokes a failing API call on purpose (cudaSetDevice(-1)), which the sanitizer
  # rightly reports as an API error; every other test must make none.
  for tool in memcheck racecheck synccheck; do
    run_step "sanitizer-$tool" "$sanitizer" --tool "$tool" --error-exitcode 9 "$tests" \
      --gtest_brief=1 --gtest_filter=-CudaError.*
  done
else
  echo "compute-sanitizer: not installed, sanitizer runs skipped" >>"$summary"
fi
run_step device-bench "$bench" --benchmark_min_time=0.2 --benchmark_format=console
if grep -q 'ERROR OCCURRED' "$work/device-bench.log"; then
  echo "device-bench: FAIL (a benchmark reported an error)" >>"$summary"
  status=1
fi
grep -E '^(floor|transfer|device_table)/' "$work/device-bench.log" >>"$summary"

echo "gpu-check: $([[ $status == 0 ]] && echo PASSED || echo FAILED); summary in $summary"
cat "$summary"
exit $status
