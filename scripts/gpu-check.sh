#!/usr/bin/env bash
# GPU checks for a machine with an NVIDIA GPU: the `gpu` tests (every CUDA kernel against its CPU
# twin; GPU-resident collections against the CPU index) and the GPU benchmarks (the rerank kernel;
# search QPS/recall over nprobe x batch 1/64/1024 on deep10k and a generated 1M x 128 set, Quiver
# beside FAISS GPU in-process). Results go under $OUT (default ./gpu-results) as JSON.
#
# Two ways, depending on what the GPU machine has:
#
#   scripts/gpu-check.sh prepare   # here (a CPU machine with nvcc): builds FAISS with GPU
#                                  # (bootstrap --with-gpu, cached) and the GPU test and bench
#                                  # binaries for sm_90, into .gpu-carry/ (git-ignored, ~50 MB)
#   scripts/gpu-check.sh run       # there, from the repo root, with .gpu-carry carried
#
#   scripts/gpu-check.sh full      # there, when it has Debian's -dev packages and the CUDA 13
#                                  # toolkit: bootstrap --with-gpu (a few minutes on 16 cores),
#                                  # build, then the same checks as `run`
#
# With the device tool: prepare here, then run(command="scripts/gpu-check.sh run",
# carry=[".gpu-carry"], timeout_s=480). `run` puts .gpu-carry (libfaiss + libfaiss_c) on
# LD_LIBRARY_PATH; the host must provide the driver, the CUDA 13 runtime + cuBLAS (libcudart.so.13,
# libcublas.so.13), OpenBLAS, libgomp, jansson and zlib: `run` lists what is missing first.
# Budget: the whole `run` stays under 8 minutes (the 1M x 128 build dominates; GPU_CHECK_SYNTH
# picks another size, e.g. 200000x128, when time is short).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
CARRY=.gpu-carry
ARCHS=${QUIVER_CUDA_ARCHS:-90}

build_gpu() { # $1 = build dir
  scripts/bootstrap.sh --with-gpu >/dev/null
  local prefix
  prefix=$(scripts/bootstrap.sh --print-prefix --with-gpu)
  cmake -S . -B "$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_CUDA=ON \
    -DQUIVER_CUDA_ARCHITECTURES="$ARCHS" -DQUIVER_FAISS_PREFIX="$prefix" >/dev/null
  cmake --build "$1" -j"$(nproc)" --target test_kernels_gpu test_kernels test_index_gpu \
    rerank_bench gpu_search
}

checks() { # $1 = directory holding the binaries
  local bin=$1 out=${OUT:-./gpu-results} rc=0
  mkdir -p "$out"
  (nvidia-smi -L || true) | tee "$out/device.txt"
  if ldd "$bin/gpu_search" | grep -q "not found"; then
    echo "gpu-check: shared libraries missing on this host:" >&2
    ldd "$bin/gpu_search" | grep "not found" >&2
    exit 2
  fi
  export QUIVER_DATA_DIR=${QUIVER_DATA_DIR:-$PWD/../shared/data}
  "$bin/test_kernels_gpu" --gtest_output="json:$out/gpu-kernel-tests.json" 2>&1 |
    tee "$out/gpu-kernel-tests.log" || rc=1
  "$bin/test_index_gpu" --gtest_output="json:$out/gpu-index-tests.json" 2>&1 |
    tee "$out/gpu-index-tests.log" || rc=1
  "$bin/test_kernels" --gtest_output="json:$out/cpu-kernel-tests.json" >"$out/cpu-tests.log" 2>&1 ||
    rc=1
  : >"$out/rerank-bench.jsonl"
  for args in "--queries 256 --candidates 1000 --features 4" \
              "--queries 1024 --candidates 1000 --features 4" \
              "--queries 256 --candidates 1000 --features 4 --mmr 0.5"; do
    # shellcheck disable=SC2086
    "$bin/rerank_bench" $args --json | tee -a "$out/rerank-bench.jsonl" || rc=1
  done
  grep -h '"identical": false' "$out/rerank-bench.jsonl" && rc=1
  : >"$out/gpu-search.jsonl"
  "$bin/gpu_search" --data "$QUIVER_DATA_DIR/deep10k/deep10k" --specs "IVF100,Flat;IVF100,SQ8" \
    --nprobes 1,8,32 --batches 1,64,1024 | tee -a "$out/gpu-search.jsonl" || rc=1
  "$bin/gpu_search" --synth "${GPU_CHECK_SYNTH:-1000000x128}" --specs "IVF1024,Flat" \
    --nprobes 8,32,128 --batches 1,64,1024 | tee -a "$out/gpu-search.jsonl" || rc=1
  echo "gpu-check: results in $out (exit $rc)"
  exit $rc
}

case "$mode" in
  prepare)
    build_gpu build-gpu
    rm -rf "$CARRY" && mkdir -p "$CARRY"
    cp build-gpu/tests/test_kernels_gpu build-gpu/tests/test_kernels build-gpu/tests/test_index_gpu \
      build-gpu/bin/rerank_bench build-gpu/bin/gpu_search "$CARRY/"
    cp -a "$(scripts/bootstrap.sh --print-prefix --with-gpu)"/lib/*.so* "$CARRY/"
    echo "prepared $CARRY ($(du -sh "$CARRY" | cut -f1)); shared libraries the binaries need:"
    ldd "$CARRY/gpu_search" | awk '{print "  " $1}'
    ;;
  run)
    [ -x "$CARRY/gpu_search" ] ||
      { echo "gpu-check: $CARRY missing: run 'prepare' first and carry it" >&2; exit 2; }
    export LD_LIBRARY_PATH="$PWD/$CARRY${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    checks "$CARRY"
    ;;
  full)
    build_gpu build-gpu
    mkdir -p build-gpu/all
    cp build-gpu/tests/test_kernels_gpu build-gpu/tests/test_kernels build-gpu/tests/test_index_gpu \
      build-gpu/bin/rerank_bench build-gpu/bin/gpu_search build-gpu/all/
    checks build-gpu/all
    ;;
  *)
    sed -n '2,24p' "$0"
    exit 2
    ;;
esac
