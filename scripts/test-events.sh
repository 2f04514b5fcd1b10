#!/usr/bin/env bash
# Wire test of the KV events publisher: decodes a real kvbm-replay stream with pyzmq + msgspec
# (pinned in scripts/requirements-events.txt, installed into BUILD_DIR/pyenv-events).
# Usage: bash scripts/test-events.sh BUILD_DIR   (needs BUILD_DIR/tools/kvbm-replay built with
# kvbm::events; skips with a message when the build has no publisher).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: test-events.sh BUILD_DIR}" && pwd)"
if ! grep -q "KVBM_HAS_EVENTS:INTERNAL=ON\|kvbm_events" "$build/CMakeCache.txt" 2>/dev/null &&
   [[ ! -f "$build/src/libkvbm_events.a" ]]; then
  echo "test-events: $build has no kvbm::events (ZeroMQ/msgpack not found); skipped"
  exit 0
fi
cmake --build "$build" --target kvbm-replay >/dev/null
python="$(bash "$root/scripts/pyenv.sh" "$build/pyenv-events" "$root/scripts/requirements-events.txt")"
exec "$python" "$root/scripts/test_events.py" "$build"
