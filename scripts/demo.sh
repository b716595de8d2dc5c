#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, build an IVF index of the demo data set with the
# offline CLI, then search it and print recall@10 against the exact ground truth.
# Data: ../shared/data/sift5k beside the checkout when present, else a generated set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target quiver >/dev/null
Q=build/bin/quiver
DATA_DIR=${QUIVER_DATA_DIR:-../shared/data}
OUT=${QUIVER_DEMO_DIR:-./quiver-data}
mkdir -p "$OUT"
if [ -f "$DATA_DIR/sift5k/sift5k_base.fvecs" ]; then
  prefix="$DATA_DIR/sift5k/sift5k"
  echo "demo data: $prefix (5000 x 128 SIFT, L2)"
else
  prefix="$OUT/synth"
  echo "demo data: $DATA_DIR/sift5k not found; generating a mixture of Gaussians"
  $Q data synth --out "$prefix" --n 5000 --queries 100 --dim 128 --clusters 64
fi
set -x
$Q index build --input "${prefix}_base.fvecs" --spec IVF64,Flat --metric l2 --out "$OUT/demo"
$Q index info --index "$OUT/demo"
$Q index search --index "$OUT/demo" --queries "${prefix}_query.fvecs" --k 10 --nprobe 32 \
  --groundtruth "${prefix}_groundtruth.ivecs"
