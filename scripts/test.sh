#!/usr/bin/env bash
# Sets up a fresh machine (scripts/bootstrap.sh), builds, and runs every test suite twice: in the
# normal build (with the CUDA kernels compiled when nvcc is present) and once more under
# AddressSanitizer + UndefinedBehaviorSanitizer; the Python client's pytest suite runs against the
# real quiverd in between. GPU tests skip themselves without a device.
#
#   scripts/test.sh            everything
#   QUIVER_SKIP_SANITIZE=1 scripts/test.sh   the normal build only (a quicker local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
jobs=$(nproc)

echo "== build (RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
# OpenMP threads per test: the suites run in parallel already.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --test-dir build -j"$jobs" --output-on-failure
echo "== Python client tests (against the real quiverd) =="
scripts/test-python.sh

if [ "${QUIVER_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (ASan + UBSan) =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQUIVER_SANITIZE=ON -DQUIVER_CUDA=OFF \
    >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests under ASan + UBSan =="
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --test-dir build-asan -j"$jobs" --output-on-failure
fi
