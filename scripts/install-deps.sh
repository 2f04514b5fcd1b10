#!/usr/bin/env bash
# Installs the Debian packages kvbm builds and tests with. Idempotent: only missing
# packages are fetched, so a machine that already has them does no network work.
set -euo pipefail
packages=(
  cmake ninja-build g++ git ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  libxxhash-dev libabsl-dev librapidcheck-dev
  nlohmann-json3-dev libcli11-dev
  python3-matplotlib
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  python3-dev python3-venv
  clang libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
