#!/usr/bin/env bash
# The fleet's figures, measured in one run on this machine (BENCHMARKING.md: side by side, A B A B,
# ratios): a loopback fleet from scripts/fleet.sh (3 etcd, 3 NATS, 4 shard servers, 2 routers)
# and one single quiverd beside it.
#
#   bench/fleet.sh [--seconds S] [--rounds N] [--out DIR]
#
#   1. router overhead: a 1 shard x 1 replica collection through a router vs the same shard's
#      collection (NAME.shard0) on its shard server directly; batch 1 (16 calls in flight) and
#      batch 64 (4 in flight): queries/s, p50, p99
#   2. fan-out cost: the same data in 2 and 4 shards (1 replica each) through the router
#   3. write acknowledgement: upserts of 1 and of 100 rows through the router (JetStream, R=3)
#      vs a single quiverd's write-ahead log (--wal-sync always), alternating (bench/upsert_ack)
#   4. catch-up rate: a replica re-created from the log alone (50,000 x 128 in the log): rows/s
#   5. failover: kill -9 the only replica's shard server (R=1): time to the first search served
#      by its replacement; and R=2: searches failed during the kill (0 expected) and time until
#      both replicas are in-sync again
#
# Data: sift5k (../shared/data) for 1-2, generated vectors for 3-5; IVF32,Flat at nprobe 8, k 10.
cd "$(dirname "$0")/.."
. scripts/errtrap.sh
SECONDS_EACH=5
ROUNDS=2
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
qv_step "building (Release: quiverd, quiver, upsert_ack)"
scripts/bootstrap.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target quiverd quiver upsert_ack >/dev/null
Q=build/bin/quiver
WORK=$(mktemp -d /tmp/quiver-fleet-bench.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
export QUIVER_FLEET_DIR=$WORK/fleet
single_pid=""
cleanup() {
  [ -n "$single_pid" ] && kill -TERM "$single_pid" 2>/dev/null
  scripts/fleet.sh down >/dev/null 2>&1
  rm -rf "$WORK/fleet" "$WORK/single"
}
trap cleanup EXIT
DATA=${QUIVER_DATA_DIR:-../shared/data}
S=$DATA/sift5k/sift5k
[ -f "${S}_base.fvecs" ] || qv_die "bench/fleet.sh needs sift5k in $DATA"

qv_step "starting the fleet and a single quiverd"
scripts/fleet.sh up >"$OUT/fleet-up.txt"
ROUTER=$(sed -n 's/^QUIVER_SERVER=//p' "$QUIVER_FLEET_DIR/env")
build/bin/quiverd --listen 127.0.0.1:0 --port-file "$WORK/single.port" --data-dir "$WORK/single" \
  --wal-sync always >"$WORK/single.log" 2>&1 &
single_pid=$!
for _ in $(seq 100); do [ -s "$WORK/single.port" ] && break; sleep 0.1; done
SINGLE=127.0.0.1:$(cat "$WORK/single.port")

cat >"$WORK/poll.py" <<'EOF'
# poll.py CLI ROUTER holder NAME | sync NAME WANT [NOT_ON] | seen NAME NOT_ON: reads
# `quiver cluster status --json` until the condition holds (120 s at most; exit 1 then).
import json, subprocess, sys, time
cli, router, mode, name = sys.argv[1:5]
def status():
    out = subprocess.run([cli, "--server", router, "cluster", "status", "--json"],
                         capture_output=True, text=True).stdout
    c = [c for c in json.loads(out)["collections"] if c["name"] == name]
    return c[0]["shard_status"] if c else []
until = time.time() + 120
while time.time() < until:
    sh = status()
    if mode == "holder" and sh:
        r = sh[0]["replicas"][0]
        print(r["node"], r["addr"])
        sys.exit(0)
    if mode == "sync":
        want, not_on = int(sys.argv[5]), (sys.argv[6] if len(sys.argv) > 6 else None)
        if sh and all(sum(r["state"] == "in-sync" and r["applied_seq"] >= r["log_seq"] and
                          r["node"] != not_on for r in x["replicas"]) >= want and
                      all(r["node"] != not_on for r in x["replicas"]) for x in sh):
            sys.exit(0)
    if mode == "seen":
        if any(r["node"] != sys.argv[5] for x in sh for r in x["replicas"]):
            sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
EOF
poll() { python3 "$WORK/poll.py" "$Q" "$ROUTER" "$@" || qv_die "bench/fleet.sh: waiting for $* timed out"; }
wait_sync() { poll sync "$@"; }
holder() { poll holder "$1"; }

qv_step "loading sift5k into 1, 2 and 4 shards (1 replica each)"
for s in 1 2 4; do
  "$Q" --server "$ROUTER" create "f$s" --dim 128 --spec IVF32,Flat --nprobe 8 --shards "$s" \
    --replicas 1 >/dev/null
  "$Q" --server "$ROUTER" upsert "f$s" --input "${S}_base.fvecs" >/dev/null
  wait_sync "f$s" 1
  "$Q" --server "$ROUTER" --timeout 300 build "f$s" >/dev/null
done
read -r _ NODE_ADDR < <(holder f1)

bench() { # label server collection batch concurrency
  "$Q" --server "$2" bench "$3" --queries "${S}_query.fvecs" --groundtruth "${S}_groundtruth.ivecs" \
    --k 10 --nprobe 8 --batch "$4" --concurrency "$5" --duration "$SECONDS_EACH" --warmup 1 \
    --json | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%s %.1f %.3f %.3f %.4f %d" % (sys.argv[1], r["queries_per_s"], r["latency_ms"]["p50"],
      r["latency_ms"]["p99"], r["recall_at_k"] or 0, r["errors"]))' "$1" >>"$OUT/search.txt"
}
qv_step "searching: $ROUNDS rounds of ${SECONDS_EACH} s per configuration, alternating"
: >"$OUT/search.txt"
for r in $(seq "$ROUNDS"); do
  for b in "1 16" "64 4"; do
    set -- $b
    bench "direct-1x1-b$1" "$NODE_ADDR" f1.shard0 "$1" "$2"
    bench "router-1x1-b$1" "$ROUTER" f1 "$1" "$2"
    bench "router-2x1-b$1" "$ROUTER" f2 "$1" "$2"
    bench "router-4x1-b$1" "$ROUTER" f4 "$1" "$2"
  done
done

qv_step "write acknowledgement: router (JetStream R=3) vs a single node's log (--wal-sync always)"
"$Q" --server "$ROUTER" create w --dim 128 --shards 1 --replicas 1 >/dev/null
"$Q" --server "$SINGLE" create w --dim 128 >/dev/null
echo "router (JetStream) = $ROUTER, single node (its log, --wal-sync always) = $SINGLE" >"$OUT/ack.txt"
build/bin/upsert_ack --dim 128 --batch 1 --calls 300 "$ROUTER=w" "$SINGLE=w" >>"$OUT/ack.txt"
build/bin/upsert_ack --dim 128 --batch 100 --calls 100 "$ROUTER=w" "$SINGLE=w" >>"$OUT/ack.txt"

qv_step "catch-up and failover (R=1): 50,000 x 128 in the log, its only replica killed -9"
"$Q" data synth --out "$WORK/cu" --n 50000 --queries 10 --dim 128 --clusters 64 >/dev/null
"$Q" --server "$ROUTER" create cu --dim 128 --shards 1 --replicas 1 >/dev/null
"$Q" --server "$ROUTER" upsert cu --input "$WORK/cu_base.fvecs" >/dev/null
wait_sync cu 1
read -r VICTIM _ < <(holder cu)
t0=$(date +%s.%N)
scripts/fleet.sh kill "${VICTIM#n}" >/dev/null
# Failover: the first search answered after the kill.
until "$Q" --server "$ROUTER" --timeout 2 search cu --queries "$WORK/cu_query.fvecs" --k 10 \
  --exact >/dev/null 2>&1; do sleep 0.05; done
t_served=$(date +%s.%N)
wait_sync cu 1 "$VICTIM"
# Catch-up: the new replica logs how long it took from opening its log to in-sync.
read -r NEWNODE _ < <(holder cu)
CATCHUP=$(grep -h "replica cu.shard0 in-sync" "$QUIVER_FLEET_DIR/logs/$NEWNODE.log" | tail -1 |
  sed 's/.*fleet: //')
scripts/fleet.sh start "${VICTIM#n}" >/dev/null

qv_step "failover (R=2): kill -9 a shard server of a 2 x 2 collection under search load"
"$Q" --server "$ROUTER" create r2 --dim 128 --spec Flat --shards 2 --replicas 2 >/dev/null
"$Q" --server "$ROUTER" upsert r2 --input "${S}_base.fvecs" >/dev/null
wait_sync r2 2
read -r V2 _ < <(holder r2)
"$Q" --server "$ROUTER" bench r2 --queries "${S}_query.fvecs" --k 10 --concurrency 4 \
  --duration 12 --warmup 0 --json >"$WORK/r2.json" 2>/dev/null &
bench_pid=$!
sleep 2
k0=$(date +%s.%N)
scripts/fleet.sh kill "${V2#n}" >/dev/null
wait_sync r2 2 "$V2"
k1=$(date +%s.%N)
wait "$bench_pid" || true

{
  echo "== bench/fleet.sh on $(hostname), $(nproc) cores, $(date -u +%FT%TZ) =="
  echo "fleet: 3 etcd, 3 NATS (JetStream R=3 logs), 4 shard servers, 2 routers (--hedge-ms 50), one"
  echo "host; data sift5k (5000 x 128), IVF32,Flat per shard, nprobe 8, k 10, 100 queries; $ROUNDS"
  echo "rounds x ${SECONDS_EACH} s per configuration, medians; quiver bench closed loop, 1 client thread"
  python3 - "$OUT/search.txt" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, qps, p50, p99, rec, err = line.split()
    rows[label].append((float(qps), float(p50), float(p99), float(rec), int(err)))
def med(label, i):
    return statistics.median(r[i] for r in rows[label])
print("%-16s %10s %9s %9s %9s %7s %16s" % ("path", "queries/s", "p50 ms", "p99 ms", "recall", "errors", "vs direct 1x1"))
for b in ("1", "64"):
    base = med("direct-1x1-b" + b, 0)
    for p in ("direct-1x1", "router-1x1", "router-2x1", "router-4x1"):
        l = p + "-b" + b
        print("%-16s %10.0f %9.3f %9.3f %9.4f %7d %16.2f" % (l, med(l, 0), med(l, 1), med(l, 2),
              med(l, 3), sum(r[4] for r in rows[l]), med(l, 0) / base))
EOF
  echo
  cat "$OUT/ack.txt"
  echo
  echo "catch-up (50,000 x 128 in the log, its replica re-created on $NEWNODE): $CATCHUP"
  python3 - "$t0" "$t_served" "$k0" "$k1" "$WORK/r2.json" <<'EOF'
import json, sys
t0, served, k0, k1 = map(float, sys.argv[1:5])
print("failover R=1: kill -9 to the first search served by the new replica: %.2f s (the lease is 3 s)" % (served - t0))
r = json.load(open(sys.argv[5]))
print("failover R=2: %d searches during the kill, %d failed; both replicas in-sync again %.2f s after the kill" % (r["calls"], r["errors"], k1 - k0))
EOF
} | tee "$OUT/summary.txt"
echo "figures in $OUT"
