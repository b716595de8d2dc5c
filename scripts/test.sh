#!/usr/bin/env bash
# Sets up a fresh machine (scripts/bootstrap.sh), builds, and runs every test suite in three
# builds, one of each build type the repo uses: build/ (Release, -O3: what the Dockerfile and
# bench/compare.sh build; the CUDA kernels compiled when nvcc is present), build-gpu/ (the
# GPU-FAISS build, RelWithDebInfo, where nvcc is) and build-asan/ (Debug under AddressSanitizer +
# UndefinedBehaviorSanitizer); the Python client's pytest suite runs against the real quiverd
# after the first; last, the libFuzzer targets (scripts/fuzz.sh: clang, ASan + UBSan) replay
# their committed inputs and fuzz for QUIVER_FUZZ_SECONDS (default 30) each. GPU tests skip
# themselves without a device. A failing step says which.
#
#   scripts/test.sh            everything
#   QUIVER_SKIP_SANITIZE=1 scripts/test.sh   skip the sanitizer pass (a quicker local loop)
#   QUIVER_SKIP_GPU_BUILD=1 scripts/test.sh  skip the GPU-FAISS variant (build-gpu/)
#   QUIVER_SKIP_FUZZ=1 scripts/test.sh       skip the fuzz targets
cd "$(dirname "$0")/.."
. scripts/errtrap.sh
. scripts/ccache-env.sh
qv_step "setting up (scripts/bootstrap.sh)"
scripts/bootstrap.sh >/dev/null
jobs=$(nproc)

echo "== build (Release) =="
qv_step "building build/ (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
qv_step "running the tests of build/ (ctest --test-dir build)" \
  "the failing tests' output is above; rerun one with: ctest --test-dir build -R NAME --output-on-failure"
# OpenMP threads per test: the suites run in parallel already.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --test-dir build -j"$jobs" --output-on-failure
echo "== Python client tests (against the real quiverd) =="
qv_step "running the Python client's tests (scripts/test-python.sh)"
scripts/test-python.sh

# The GPU variant: the same sources linked against FAISS built with GPU support, wherever nvcc
# is. It proves the GPU glue of index/ compiles, links and runs (its GPU tests skip without a
# device). The GPU FAISS build is cached like the CPU one; a fresh machine pays ~15-21 minutes.
if [ "${QUIVER_SKIP_GPU_BUILD:-0}" != 1 ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
  echo "== build (GPU FAISS) =="
  qv_step "setting up FAISS with GPU (scripts/bootstrap.sh --with-gpu)"
  scripts/bootstrap.sh --with-gpu >/dev/null
  qv_step "building build-gpu/ (RelWithDebInfo, GPU FAISS)"
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_CUDA=ON \
    -DQUIVER_FAISS_PREFIX="$(scripts/bootstrap.sh --print-prefix --with-gpu)" >/dev/null
  cmake --build build-gpu -j"$jobs"
  echo "== tests (GPU FAISS build) =="
  # What the FAISS flavour can change: everything over index/ (collections, placement, the
  # server's RPCs, the CLI). Not run again here, as build/ ran them against the same code: the
  # static checks (label unit), fault injection, kill -9 durability and the operations tests
  # (metrics, TLS, tokens, the accept watchdog), the cluster engines' clients (etcd, NATS,
  # membership) and the fleet (routers and replicas: a shard's search is the server's, run here
  # already), none of which reaches a FAISS call that differs.
  qv_step "running the tests of build-gpu/ (ctest --test-dir build-gpu)"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --test-dir build-gpu -j"$jobs" --output-on-failure \
    -LE '^unit$' -E '^(Fault|FaultDisk|CrashSafety|Ops|OpsStart|EtcdTest|EtcdOpen|JsLogTest|JsLogOpen|Member|FleetTest)\.'
fi

if [ "${QUIVER_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (ASan + UBSan) =="
  qv_step "building build-asan/ (Debug, ASan + UBSan)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQUIVER_SANITIZE=ON -DQUIVER_CUDA=OFF \
    >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests under ASan + UBSan =="
  qv_step "running the tests of build-asan/ under ASan + UBSan (ctest --test-dir build-asan)"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  # The fleet's tests each start 3 etcd, 3 NATS and 6 quiverd (slow under ASan): the ones that
  # add no code path of their own over the others are left to build/ (the recall comparison, the
  # hedging delay, the second kill during a repair, the rollout CLI's output).
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --test-dir build-asan -j"$jobs" --output-on-failure \
    -E '^FleetTest\.(IvfThroughARouterKeepsASingleNodesRecall|HedgingCoversAReplicaStoppedForFiveSeconds|WritesSurviveAReplicaKilledTwiceDuringItsRepair|TheRolloutCliStagesFlipsAndRollsBackThroughARouter)$'
fi

if [ "${QUIVER_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz targets (scripts/fuzz.sh, ${QUIVER_FUZZ_SECONDS:-30} s each) =="
  qv_step "running the fuzz targets (scripts/fuzz.sh)" \
    "the reproducer and the command to replay it are printed above"
  scripts/fuzz.sh --seconds "${QUIVER_FUZZ_SECONDS:-30}"
fi
