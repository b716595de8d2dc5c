#!/usr/bin/env bash
# The filtered-search table: selectivity x path x QPS x recall@10, on Fashion-MNIST (60000 x 784,
# its 10000 test images as queries; an independent hashed attribute at 50 / 10 / 1 / 0.1 % and
# the image class, a filter correlated with the vectors) for IVF256,Flat (nprobe 6: the list scan)
# and HNSW32 (efSearch 16: over-fetch), and on sift5k for IVF64,Flat and HNSW32; 100 % is the
# unfiltered baseline at the same parameter. 1 OpenMP thread,
# one query per call (bench/filter_bench.c).
# Usage: bench/filter_table.sh [build-dir]   (build first: cmake --build build --target filter_bench)
# Fashion-MNIST comes from Debian's dataset-fashion-mnist, converted once by bench/fmnist_data.py
# into $QUIVER_CACHE/data/fmnist (default ~/.cache/quiver); without it that part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}/bin/filter_bench
D=${QUIVER_DATA_DIR:-../shared/data}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$B --data "$D/sift5k/sift5k" --specs "IVF64,Flat;HNSW32" --params "8;32" --sels 100,50,10,1,0.1 --nq 100 --reps 3
F=${QUIVER_CACHE:-$HOME/.cache/quiver}/data/fmnist
if [ ! -f "$F/fmnist_base_labels.ivecs" ]; then
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
$B --data "$F/fmnist" --labels "$F/fmnist_base_labels.ivecs" --specs "IVF256,Flat;HNSW32" \
  --params "6;16" --sels 100,50,10,1,0.1 --nq 500 --reps 3
