#!/usr/bin/env bash
# The recall/QPS table of the index layer beside FAISS in-process on the same index, for the data
# sets in ../shared/data: spec x nprobe, 1 OpenMP thread, whole query set per call.
# Usage: bench/index_table.sh [build-dir]   (build first: cmake --build build --target index_compare)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}/bin/index_compare
D=${QUIVER_DATA_DIR:-../shared/data}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "# FAISS: $(cat "$(scripts/bootstrap.sh --print-prefix)/faiss.env" | tr '\n' ' ')"
$B --data "$D/sift5k/sift5k" --specs "IVF64,Flat;IVF64,SQ8;IVF64,PQ16" --nprobes 1,4,8,16,32 \
  --reps 5
$B --data "$D/deep10k/deep10k" --specs "IVF100,Flat;IVF100,SQ8;IVF100,PQ16" \
  --nprobes 1,4,8,16,32 --reps 5
$B --data "$D/deep10k/deep10k" --metric ip --gt-suffix _groundtruth_ip.ivecs \
  --specs "IVF100,Flat" --nprobes 8,16,32 --reps 5
