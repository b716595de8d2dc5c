#!/usr/bin/env bash
# The recall/QPS table of the index layer beside FAISS in-process on the same index, for the data
# sets in ../shared/data and Fashion-MNIST: spec x nprobe (IVF) or efSearch (HNSW), 1 OpenMP
# thread, whole query set per call.
# Usage: bench/index_table.sh [build-dir]   (build first: cmake --build build --target index_compare)
# Fashion-MNIST (60000 x 784, its 10000 test images as queries) comes from Debian's
# dataset-fashion-mnist, converted once by bench/fmnist_data.py into $QUIVER_CACHE/data/fmnist
# (default ~/.cache/quiver); without the package or numpy that part is skipped, saying so.
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
$B --data "$D/sift5k/sift5k" --specs "HNSW32;HNSW32,SQ8" --nprobes 16,32,64,128 --reps 5
$B --data "$D/sift5k/sift5k" --specs "IVF64,PQ32x4fs" --nprobes 1,4,8,16,32 --reps 5
$B --data "$D/deep10k/deep10k" --specs "HNSW32;HNSW32,SQ8" --nprobes 16,32,64,128 --reps 5
F=${QUIVER_CACHE:-$HOME/.cache/quiver}/data/fmnist
if [ ! -f "$F/fmnist_groundtruth.ivecs" ]; then
  py=python3
  [ -x build/py-venv/bin/python ] && py=build/py-venv/bin/python
  if [ -d /usr/share/datasets/fashion-mnist ] && "$py" -c 'import numpy' 2>/dev/null; then
    "$py" bench/fmnist_data.py "$F"
  else
    echo "# fmnist skipped: needs Debian's dataset-fashion-mnist (apt-get install" \
      "dataset-fashion-mnist) and numpy (scripts/test-python.sh makes build/py-venv)"
    exit 0
  fi
fi
$B --data "$F/fmnist" --specs "IVF256,Flat;IVF256,PQ56x4fs" --nprobes 6,12 --reps 3
$B --data "$F/fmnist" --specs "HNSW32;HNSW32,SQ8" --nprobes 16,32,64 --reps 3
