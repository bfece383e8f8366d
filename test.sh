#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest. Non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 600
