#!/usr/bin/env bash
# A fleet rollout's figures (docs/rollout.md), in one run on this machine: a loopback fleet from
# scripts/fleet.sh (3 etcd, 3 NATS, 4 shard servers, 2 routers), a collection in 2 shards x 2
# replicas, and `quiver rollout` of a second version built offline from other embeddings of the
# same ids (`quiver index build --shards 2`), under search load through a router.
#
#   bench/rollout.sh [--sets deep10k,1m] [--n N] [--out DIR]
#
# Per data set: the time from the rollout's begin to the flip (the push of every shard's
# directory to its two replicas, the replicas' catch-up and warm-up, the controller's flip); the
# search p50/p99 (batch 1, 8 calls in flight, k 10) in 5 s before, in 2-s windows while the
# rollout runs, and 5 s after; each shard server's peak resident memory during the rollout and
# the two versions it holds right after the flip (the previous one is held 20 s: --hold 20).
#
# Data: deep10k (../shared/data; v2 = a generated set of the same size and dimension), and a
# generated 1M x 128 set (v1 seed 42, v2 seed 43; --n changes its size). IVF64,Flat at nprobe 8
# for deep10k, IVF512,Flat at nprobe 16 for the 1M set.
cd "$(dirname "$0")/.."
. scripts/errtrap.sh
SETS=deep10k,1m
N1M=1000000
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sets) SETS=$2; shift 2 ;;
    --n) N1M=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
qv_step "building (Release: quiverd, quiver)"
scripts/bootstrap.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target quiverd quiver >/dev/null
Q=build/bin/quiver
WORK=$(mktemp -d /tmp/quiver-rollout-bench.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
export QUIVER_FLEET_DIR=$WORK/fleet
cleanup() {
  scripts/fleet.sh down >/dev/null 2>&1
  rm -rf "$WORK/fleet" "$WORK"/*.fvecs "$WORK"/*.ivecs "$WORK"/v2-*
}
trap cleanup EXIT
DATA=${QUIVER_DATA_DIR:-../shared/data}

qv_step "starting the fleet"
scripts/fleet.sh up >"$OUT/fleet-up.txt"
ROUTER=$(sed -n 's/^QUIVER_SERVER=//p' "$QUIVER_FLEET_DIR/env")

# Waits (up to 30 min) until every replica of $1 is in-sync with its whole log applied.
wait_sync() {
  python3 - "$Q" "$ROUTER" "$1" <<'PYEOF' || qv_die "bench/rollout.sh: $1 never got in-sync"
import json, subprocess, sys, time
cli, router, name = sys.argv[1:4]
until = time.time() + 1800
while time.time() < until:
    out = subprocess.run([cli, "--server", router, "cluster", "status", "--json"],
                         capture_output=True, text=True).stdout
    c = [c for c in json.loads(out)["collections"] if c["name"] == name]
    sh = c[0]["shard_status"] if c else []
    if sh and all(sum(r["state"] == "in-sync" and r["applied_seq"] >= r["log_seq"]
                      for r in x["replicas"]) >= 2 for x in sh):
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
PYEOF
}

# One search window: label seconds -> "label qps p50 p99 errors" to $OUT/search-$SET.txt
bench() {
  "$Q" --server "$ROUTER" bench "$SET" --queries "$QUERIES" --k 10 --batch 1 --concurrency 8 \
    --duration "$2" --json 2>/dev/null | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%s %.1f %.3f %.3f %d" % (sys.argv[1], r["queries_per_s"], r["latency_ms"]["p50"],
      r["latency_ms"]["p99"], r["errors"]))' "$1" >>"$OUT/search-$SET.txt"
}

run_set() { # SET V1 V2 QUERIES DIM SPEC NPROBE
  SET=$1 V1=$2 V2=$3 QUERIES=$4 DIM=$5 SPEC=$6 NPROBE=$7
  : >"$OUT/search-$SET.txt"
  qv_step "$SET: loading v1 into 2 shards x 2 replicas ($SPEC)"
  "$Q" --server "$ROUTER" create "$SET" --dim "$DIM" --spec "$SPEC" --nprobe "$NPROBE" \
    --shards 2 --replicas 2 >/dev/null
  local t0=$(date +%s.%N)
  "$Q" --server "$ROUTER" --timeout 3600 upsert "$SET" --input "$V1" >/dev/null
  wait_sync "$SET"
  "$Q" --server "$ROUTER" --timeout 3600 build "$SET" >/dev/null
  wait_sync "$SET"
  echo "load+build v1: $(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s" \
    >"$OUT/load-$SET.txt"
  qv_step "$SET: building v2 offline, split per shard"
  "$Q" index build --input "$V2" --out "$WORK/v2-$SET" --spec "$SPEC" --default-nprobe "$NPROBE" \
    --shards 2 >"$OUT/build-v2-$SET.txt"
  qv_step "$SET: search before, during and after the rollout"
  bench before 5
  # Each shard server's peak resident memory while the rollout runs.
  (
    declare -A peak
    while [ ! -f "$WORK/rollout-done" ]; do
      for i in 0 1 2 3; do
        pid=$(cat "$QUIVER_FLEET_DIR/pids/n$i")
        kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${kb:-0}" -gt "${peak[$i]:-0}" ] && peak[$i]=$kb
      done
      sleep 0.1
    done
    for i in 0 1 2 3; do echo "n$i ${peak[$i]:-0}"; done >"$OUT/rss-$SET.txt"
  ) &
  local sampler=$!
  rm -f "$WORK/rollout-done"
  "$Q" --server "$ROUTER" rollout "$SET" --index "$WORK/v2-$SET" --hold 20 --wait 1800 \
    >"$OUT/rollout-$SET.txt" 2>&1 &
  local ro=$!
  while kill -0 "$ro" 2>/dev/null; do bench during 2; done
  wait "$ro" || { cat "$OUT/rollout-$SET.txt"; qv_die "$SET: the rollout failed"; }
  touch "$WORK/rollout-done"
  wait "$sampler"
  # The versions each replica holds right after the flip (the previous one is still held).
  "$Q" --server "$ROUTER" cluster status --json >"$OUT/status-$SET.json"
  python3 - "$Q" "$OUT/status-$SET.json" "$SET" >"$OUT/held-$SET.txt" <<'PYEOF'
import json, subprocess, sys
cli, path, name = sys.argv[1:4]
st = json.load(open(path))
c = [c for c in st["collections"] if c["name"] == name][0]
for x in c["shard_status"]:
    for r in x["replicas"]:
        out = subprocess.run([cli, "--server", r["addr"], "describe", "%s.shard%d" % (name, x["shard"]),
                              "--json"], capture_output=True, text=True).stdout
        d = json.loads(out)
        beside = sum(v["memory_bytes"] for v in d.get("versions", []))
        print("%s shard %d: serving v%d %.1f MiB, beside %s %.1f MiB" % (
            r["node"], x["shard"], d["version"], d["memory_bytes"] / 2**20,
            ",".join("v%d %s" % (v["version"], v["state"]) for v in d.get("versions", [])) or "-",
            beside / 2**20))
PYEOF
  bench after 5
}

for set in ${SETS//,/ }; do
  case "$set" in
    deep10k)
      D=$DATA/deep10k/deep10k
      [ -f "${D}_base.fvecs" ] || qv_die "bench/rollout.sh needs deep10k in $DATA"
      "$Q" data synth --out "$WORK/deep10k-v2" --n 10000 --dim 96 --queries 10 --seed 7 >/dev/null
      run_set deep10k "${D}_base.fvecs" "$WORK/deep10k-v2_base.fvecs" "${D}_query.fvecs" 96 \
        IVF64,Flat 8
      ;;
    1m)
      qv_step "generating ${N1M} x 128 twice (seeds 42 and 43)"
      "$Q" data synth --out "$WORK/g1" --n "$N1M" --dim 128 --queries 1000 --seed 42 >/dev/null
      "$Q" data synth --out "$WORK/g2" --n "$N1M" --dim 128 --queries 10 --seed 43 >/dev/null
      run_set gen1m "$WORK/g1_base.fvecs" "$WORK/g2_base.fvecs" "$WORK/g1_query.fvecs" 128 \
        IVF512,Flat 16
      ;;
    *) qv_die "unknown set '$set' (deep10k, 1m)" ;;
  esac
done

# The table.
python3 - "$OUT" <<'PYEOF'
import glob, os, re, sys
out = sys.argv[1]
print("| set | push to flip s | pushed MiB | p99 before ms | p99 during (worst 2-s window) ms | "
      "p99 after ms | errors | peak RSS per node MiB | held per node after the flip |")
print("|---|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "rollout-*.txt"))):
    s = f[len(os.path.join(out, "rollout-")):-4]
    txt = open(f).read()
    m = re.search(r"flipped to version \d+ ([\d.]+) s after the rollout began \(pushed ([\d.]+) MiB", txt)
    rows = [l.split() for l in open(os.path.join(out, "search-%s.txt" % s))]
    p99 = lambda lab: [float(r[3]) for r in rows if r[0] == lab]
    errs = sum(int(r[4]) for r in rows)
    rss = " / ".join("%s %.0f" % (l.split()[0], int(l.split()[1]) / 1024)
                     for l in open(os.path.join(out, "rss-%s.txt" % s)))
    held = "; ".join(l.strip() for l in open(os.path.join(out, "held-%s.txt" % s)))
    print("| %s | %s | %s | %.2f | %.2f | %.2f | %d | %s | %s |" % (
        s, m.group(1) if m else "?", m.group(2) if m else "?", max(p99("before") or [0]),
        max(p99("during") or [0]), max(p99("after") or [0]), errs, rss, held))
PYEOF
echo "(raw files in $OUT)"
