#!/usr/bin/env bash
# GPU checks for a machine with an NVIDIA GPU, in two steps, so the GPU machine needs nothing but
# a driver (it has no Debian -dev packages and no network):
#
#   scripts/gpu-check.sh prepare   # here (CPU machine with nvcc): build the GPU tests and
#                                  # benchmarks for sm_90 into .gpu-carry/ (git-ignored)
#   scripts/gpu-check.sh run       # there, from the repo root, with .gpu-carry carried:
#                                  # runs the `gpu` tests and the rerank benchmark, writes
#                                  # results under $OUT (default ./gpu-results)
#
# With the device tool: prepare here, then run(command="scripts/gpu-check.sh run",
# carry=[".gpu-carry"], timeout_s=300). The binaries link cudart statically and need only libc,
# libstdc++, libm, zlib and the driver's libcuda there. Expect well under a minute of run time.
#
# Not covered yet: the search-level GPU benchmark (FAISS GPU in-process beside Quiver on deep10k
# and a generated 1M x 128 set) needs GPU residency of collections, which is still to be built.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
CARRY=.gpu-carry
case "$mode" in
  prepare)
    scripts/bootstrap.sh >/dev/null
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DQUIVER_CUDA=ON \
      -DQUIVER_CUDA_ARCHITECTURES="${QUIVER_CUDA_ARCHS:-90}" >/dev/null
    cmake --build build-gpu -j"$(nproc)" --target test_kernels_gpu test_kernels rerank_bench
    rm -rf "$CARRY" && mkdir -p "$CARRY"
    cp build-gpu/tests/test_kernels_gpu build-gpu/tests/test_kernels build-gpu/bin/rerank_bench \
      "$CARRY/"
    echo "prepared $CARRY ($(du -sh "$CARRY" | cut -f1)); shared libraries the binaries need:"
    ldd "$CARRY/test_kernels_gpu" | awk '{print "  " $1}'
    ;;
  run)
    out=${OUT:-./gpu-results}
    mkdir -p "$out"
    [ -x "$CARRY/test_kernels_gpu" ] || { echo "gpu-check: $CARRY missing: run 'prepare' first and carry it" >&2; exit 2; }
    (nvidia-smi -L || true) | tee "$out/device.txt"
    rc=0
    "$CARRY/test_kernels_gpu" --gtest_output="json:$out/gpu-tests.json" 2>&1 | tee "$out/gpu-tests.log" || rc=1
    "$CARRY/test_kernels" --gtest_output="json:$out/cpu-tests.json" >"$out/cpu-tests.log" 2>&1 || rc=1
    : >"$out/rerank-bench.jsonl"
    for args in "--queries 256 --candidates 1000 --features 4" \
                "--queries 1024 --candidates 1000 --features 4" \
                "--queries 64 --candidates 4000 --features 0" \
                "--queries 256 --candidates 1000 --features 4 --mmr 0.5"; do
      # shellcheck disable=SC2086
      "$CARRY/rerank_bench" $args --json | tee -a "$out/rerank-bench.jsonl" || rc=1
    done
    grep -h '"identical": false' "$out/rerank-bench.jsonl" && rc=1
    echo "gpu-check: results in $out (exit $rc)"
    exit $rc
    ;;
  *)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
