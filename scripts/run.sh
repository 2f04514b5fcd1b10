#!/usr/bin/env bash
# The main job from a fresh clone: installs dependencies, builds (Release), shows one block's
# life in the quickstart example, then replays the shipped Mooncake trace sample through a
# G1 + G2 cache and prints what the cache did. Extra arguments go to kvbm-replay.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="/usr/local/cuda/bin:$PATH"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/kvbm-ccache}"
cmake --preset release >/dev/null
cmake --build --preset release -j "${KVBM_JOBS:-$(nproc)}" --target kvbm_quickstart kvbm-replay
echo
build/release/examples/kvbm_quickstart
echo
echo "=== kvbm-replay: data/mooncake_conversation_sample.jsonl (serve mode, G1 + G2) ==="
build/release/tools/kvbm-replay --trace data/mooncake_conversation_sample.jsonl \
  --mode serve --blocks 4096 --g2-blocks 16384 "$@"
