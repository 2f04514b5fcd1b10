#!/usr/bin/env bash
# The Python CI step: builds the kvbm package into a fresh virtual environment with `pip install .`
# (the project's CMake through scikit-build-core; CUDA targets when nvcc is found, as the C++
# build), checks that the checked-in type stubs (python/kvbm/_kvbm.pyi) are what nanobind's
# stubgen makes of the built module, runs the pytest suite, the vLLM-style adapter example, and a
# one-moment smoke run of bench/python_overhead.py (no timing).
# The venv is rebuilt every run; the CMake build folder (WORK_DIR/cmake) and ccache (CCACHE_DIR)
# persist, so a rerun recompiles only what changed.
# Usage: scripts/test-python.sh [--update-stubs | --asan | --tsan] [WORK_DIR]
#   WORK_DIR        default build/python-ci
#   --update-stubs  rewrites python/kvbm/_kvbm.pyi instead of failing when it is stale.
#   --asan, --tsan  instead: builds the extension with ASan+UBSan or TSan (CMake directly, in
#                   WORK_DIR/address or WORK_DIR/thread) and runs the pytest suite under it
#                   (leak detection off: CPython keeps its interned objects at exit; under TSan
#                   the C++ events tests' suppressions of races inside uninstrumented libzmq).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
update_stubs=0 sanitizer=""
case "${1:-}" in
  --update-stubs) update_stubs=1; shift ;;
  --asan) sanitizer=address; shift ;;
  --tsan) sanitizer=thread; shift ;;
esac
work="${1:-build/python-ci}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/kvbm-ccache}"
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
# The CMake build inside pip: at most KVBM_JOBS parallel compiles (the C++ steps' convention).
export CMAKE_BUILD_PARALLEL_LEVEL="${KVBM_JOBS:-$(nproc)}"
start=$SECONDS

if [[ -n "$sanitizer" ]]; then
  # The extension built with the sanitizer (CMake directly), the pytest suite run with its
  # runtime preloaded into the (uninstrumented) interpreter.
  if [[ "$sanitizer" == address ]]; then
    name="ASan+UBSan" build_type=Debug
    preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  else
    name="TSan" build_type=RelWithDebInfo preload="$(gcc -print-file-name=libtsan.so)"
  fi
  echo "=== kvbm python: pytest under ${name} ==="
  py="$(bash scripts/pyenv.sh "$work/venv-asan" python/requirements.txt)"
  build="$work/$sanitizer" stage="$work/$sanitizer-stage"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" -DKVBM_SANITIZE="$sanitizer" \
    -DKVBM_BUILD_PYTHON=ON -DKVBM_BUILD_TESTS=OFF -DKVBM_BUILD_BENCH=OFF -DKVBM_BUILD_TOOLS=OFF \
    -DKVBM_CUDA=OFF -DPython_EXECUTABLE="$py" >/dev/null
  cmake --build "$build" --target _kvbm -j "$CMAKE_BUILD_PARALLEL_LEVEL"
  rm -rf "$stage" && mkdir -p "$stage/kvbm"
  cp python/kvbm/*.py "$stage/kvbm/" && cp "$build"/python/_kvbm*.so "$stage/kvbm/"
  (cd "$work" && PYTHONPATH="$stage" LD_PRELOAD="$preload" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$repo/tests/events/tsan.supp" \
    "$py" -m pytest -q -p no:cacheprovider "$repo/python/tests")
  echo "=== kvbm python: ${name} passed in $((SECONDS - start)) s ==="
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
