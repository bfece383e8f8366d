#!/usr/bin/env bash
# Shared by run.sh and test.sh: install the Debian 12 packages kdcart needs (only those
# missing), then configure and build. BUILD_DIR and BUILD_TYPE may be set by the caller.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake ninja-build g++ pkg-config
  libasio-dev libserialport-dev libspdlog-dev libcli11-dev doctest-dev libexpected-dev
  libssl-dev libunicorn-dev libzydis-dev llvm-14-dev libcurl4-openssl-dev libedit-dev zlib1g-dev
  clang-14 clang-tools-14 lld-14 lld libclang-rt-14-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${BUILD_DIR:-build}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
JOBS="${JOBS:-2}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_EXTRA:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
