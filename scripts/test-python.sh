#!/usr/bin/env bash
# The Python CI step: builds the kvbm package into a fresh virtual environment with `pip install .`
# (the project's CMake through scikit-build-core; CUDA targets when nvcc is found, as the C++
# build), checks that the checked-in type stubs (python/kvbm/_kvbm.pyi) are what nanobind's
# stubgen makes of the built module, runs the pytest suite, the vLLM-style adapter example, and a
# one-moment smoke run of bench/python_overhead.py (no timing).
# The venv is rebuilt every run; the CMake build folder (WORK_DIR/cmake) and ccache (CCACHE_DIR)
# persist, so a rerun recompiles only what changed.
# Usage: scripts/test-python.sh [--update-stubs | --asan] [WORK_DIR]   (default build/python-ci)
#   --update-stubs  rewrites python/kvbm/_kvbm.pyi instead of failing when it is stale.
#   --asan          instead: builds the extension with ASan+UBSan (CMake directly, WORK_DIR/asan)
#                   and runs the pytest suite under it (leak detection off: CPython keeps its
#                   interned objects at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
update_stubs=0 asan=0
if [[ "${1:-}" == --update-stubs ]]; then update_stubs=1; shift; fi
if [[ "${1:-}" == --asan ]]; then asan=1; shift; fi
work="${1:-build/python-ci}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/kvbm-ccache}"
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
# The CMake build inside pip: at most KVBM_JOBS parallel compiles (the C++ steps' convention).
export CMAKE_BUILD_PARALLEL_LEVEL="${KVBM_JOBS:-$(nproc)}"
start=$SECONDS

if ((asan)); then
  echo "=== kvbm python: pytest under ASan+UBSan ==="
  py="$(bash scripts/pyenv.sh "$work/venv-asan" python/requirements.txt)"
  cmake -S . -B "$work/asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKVBM_SANITIZE=address \
    -DKVBM_BUILD_PYTHON=ON -DKVBM_BUILD_TESTS=OFF -DKVBM_BUILD_BENCH=OFF -DKVBM_BUILD_TOOLS=OFF \
    -DKVBM_CUDA=OFF -DPython_EXECUTABLE="$py" >/dev/null
  cmake --build "$work/asan" --target _kvbm -j "$CMAKE_BUILD_PARALLEL_LEVEL"
  stage="$work/asan-stage/kvbm"
  rm -rf "$stage" && mkdir -p "$stage"
  cp python/kvbm/*.py "$stage/" && cp "$work"/asan/python/_kvbm*.so "$stage/"
  (cd "$work" && PYTHONPATH="$work/asan-stage" \
    LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$py" -m pytest -q -p no:cacheprovider "$repo/python/tests")
  echo "=== kvbm python: ASan+UBSan passed in $((SECONDS - start)) s ==="
  exit 0
fi

echo "=== kvbm python: fresh venv, pip install . ==="
rm -rf "$work/venv"
py="$(bash scripts/pyenv.sh "$work/venv" python/requirements.txt)"
# The build backend and nanobind come pinned from python/requirements.txt (the same pins as
# pyproject.toml's build-system table); without isolation the persistent build folder keeps
# valid paths (the venv is recreated at the same place) from run to run.
"$py" -m pip install -q --no-build-isolation -Cbuild-dir="$work/cmake" "$repo"

echo "=== kvbm python: type stubs are current ==="
"$py" -m nanobind.stubgen -q -m kvbm._kvbm -o "$work/_kvbm.pyi"
if ((update_stubs)); then
  cp "$work/_kvbm.pyi" python/kvbm/_kvbm.pyi
  echo "python/kvbm/_kvbm.pyi updated"
elif ! diff -u python/kvbm/_kvbm.pyi "$work/_kvbm.pyi"; then
  echo "python/kvbm/_kvbm.pyi is stale: run scripts/test-python.sh --update-stubs" >&2
  exit 1
fi

echo "=== kvbm python: pytest ==="
# From outside the source tree, so `import kvbm` is the installed package.
(cd "$work" && "$py" -m pytest -q -p no:cacheprovider "$repo/python/tests")

echo "=== kvbm python: adapter example and benchmark smoke run ==="
(cd "$work" && "$py" "$repo/examples/python/vllm_adapter.py")
(cd "$work" && "$py" "$repo/bench/python_overhead.py" --iterations 10 --repeats 1 >/dev/null)
echo "=== kvbm python: passed in $((SECONDS - start)) s ==="
