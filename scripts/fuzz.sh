#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang) and fuzzes the trace parser for SECONDS.
#   scripts/fuzz.sh SECONDS [BUILD_DIR]      (default BUILD_DIR: build/fuzz)
# Exit status 0 when no crash was found; otherwise libFuzzer's non-zero status, with the
# crashing input under BUILD_DIR/artifacts/ (replay it: BUILD_DIR/trace_parser_fuzz FILE).
# New interesting inputs accumulate in BUILD_DIR/corpus (not checked in); the seed corpus
# tests/fuzz/corpus/trace is only read. CXX=clang++ picks another clang.
set -euo pipefail

seconds=${1:?usage: scripts/fuzz.sh SECONDS [BUILD_DIR]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${2:-$root/build/fuzz}
cxx=${CXX:-}
if [[ -z "$cxx" || "$cxx" != *clang* ]]; then
  cxx=$(command -v clang++-14 || command -v clang++ || true)
fi
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" -DKVBM_ROOT="$root" "${launcher[@]}" >/dev/null
cmake --build "$build" -j2

mkdir -p "$build/corpus" "$build/artifacts"
echo "fuzz.sh: fuzzing the trace parser for ${seconds}s"
"$build/trace_parser_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -dict="$root/tests/fuzz/trace.dict" -artifact_prefix="$build/artifacts/" \
  -print_final_stats=1 "$build/corpus" "$root/tests/fuzz/corpus/trace"
