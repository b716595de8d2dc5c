#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, start quiverd with the demo collection (sift5k
# from ../shared/data when present, generated vectors otherwise; IVF64,Flat, l2), query it over
# gRPC with the quiver CLI and print recall@10, then stop the server with SIGTERM.
#   QUIVER_DEMO_PORT (default 7070), QUIVER_DEMO_DIR (default ./quiver-data)
cd "$(dirname "$0")/.."
. scripts/errtrap.sh
. scripts/ccache-env.sh
qv_step "setting up (scripts/bootstrap.sh)"
scripts/bootstrap.sh >/dev/null
qv_step "building quiverd and quiver (build/, Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target quiver quiverd >/dev/null
Q=build/bin/quiver
DATA_DIR=${QUIVER_DATA_DIR:-../shared/data}
OUT=${QUIVER_DEMO_DIR:-./quiver-data}
PORT=${QUIVER_DEMO_PORT:-7070}
mkdir -p "$OUT"
if [ -f "$DATA_DIR/sift5k/sift5k_base.fvecs" ]; then
  prefix="$DATA_DIR/sift5k/sift5k"
  echo "demo data: $prefix (5000 x 128 SIFT, L2)"
else
  prefix="$OUT/synth"
  echo "demo data: $DATA_DIR/sift5k not found; generating a mixture of Gaussians"
  $Q data synth --out "$prefix" --n 5000 --queries 100 --dim 128 --clusters 64
fi
qv_step "starting quiverd on 127.0.0.1:$PORT" \
  "another process may hold the port: pick another with QUIVER_DEMO_PORT=7071 scripts/demo.sh"
build/bin/quiverd --listen "127.0.0.1:$PORT" --data-dir "$OUT" --demo --demo-data "$prefix" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
export QUIVER_SERVER="127.0.0.1:$PORT"
for _ in $(seq 300); do
  $Q health >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || qv_die "quiverd exited before it answered (its log is above)"
  sleep 0.1
done
qv_step "querying the demo collection over gRPC"
set -x
$Q health
$Q describe demo
$Q search demo --queries "${prefix}_query.fvecs" --k 10 --nprobe 32 \
  --groundtruth "${prefix}_groundtruth.ivecs"
