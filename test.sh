#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest. Non-zero on any failure.
#
# With KDCART_FUZZ_RUNS=1, a second build with libFuzzer and clang-14 (build-fuzz) runs each fuzz
# target for a few seconds (KDCART_FUZZ_SECONDS, default 5) from the seeds in tests/fuzz/corpus.
# With KDCART_ASAN=1, a third build with ASan and UBSan (build-asan) runs the unit tests (ctest
# label `unit`: everything but test_e2e_*). CI (.ci/run) turns both on: on a fresh clone on
# the 2-core machine all three took 1,379 s together.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
JOBS="${JOBS:-2}"
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 600)

if [ "${KDCART_FUZZ_RUNS:-}" = "1" ] && command -v clang++-14 >/dev/null 2>&1; then
  FUZZ_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
  cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_CXX_COMPILER=clang++-14 -DKDCART_FUZZ=ON \
    -DKDCART_FUZZ_SECONDS="${KDCART_FUZZ_SECONDS:-5}" >/dev/null
  cmake --build "$FUZZ_DIR" -j "$JOBS" --target kdcart_fuzzers
  (cd "$FUZZ_DIR" && ctest --output-on-failure -L fuzz)
fi

if [ "${KDCART_ASAN:-}" = "1" ]; then
  ASAN_DIR="${ASAN_BUILD_DIR:-build-asan}"
  # -O1 without debug information, to keep CI's build short: a report names the functions on
  # its stack, not the lines (for lines, build it again with -DCMAKE_BUILD_TYPE=RelWithDebInfo).
  cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1" \
    -DCMAKE_C_FLAGS_RELEASE="-O1" -DKDCART_SANITIZE=ON >/dev/null
  cmake --build "$ASAN_DIR" -j "$JOBS" --target kdcart_unit_tests
  (cd "$ASAN_DIR" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure --timeout 600 -L unit)
fi
