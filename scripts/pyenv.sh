#!/usr/bin/env bash
# Creates (once) a Python virtual environment and installs pinned requirements into it, so no
# Python package ever lands in the system interpreter. Prints the venv's python on stdout.
# Usage: scripts/pyenv.sh VENV_DIR REQUIREMENTS_FILE...
set -euo pipefail
venv="$1"; shift
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$venv/.requirements"
want="$(cat "$@" 2>/dev/null | sort)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  for req in "$@"; do "$venv/bin/python" -m pip install -q -r "$req" >&2; done
  printf '%s' "$want" >"$stamp"
fi
echo "$venv/bin/python"
