#!/usr/bin/env bash
# Two quiverd binaries side by side in ONE run: the same index pushed into each, then the same
# loads against A and B in alternation (A B A B ...), so that what the machine does meanwhile
# falls on both. Prints, per load, the median queries/s of each and the ratio B/A.
#
#   bench/ab_quiverd.sh --a OLD/quiverd --b NEW/quiverd [--data sift5k] [--rounds 5] [--seconds 3]
#
# Loads: 64 queries per call with 4 in flight (compare.sh's (b)), and 1 query per call with 64
# in flight, batching on (its (c)). The client is this tree's build/bin/quiver for both.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
A="" B="" set=sift5k rounds=5 secs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --a) A=$2; shift ;;
    --b) B=$2; shift ;;
    --data) set=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --seconds) secs=$2; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "ab_quiverd.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$A" ] && [ -x "$B" ] || { echo "ab_quiverd.sh: give --a and --b quiverd binaries" >&2; exit 2; }
Q=build/bin/quiver
[ -x "$Q" ] || { echo "ab_quiverd.sh: build $Q first" >&2; exit 2; }
d="$repo/../shared/data/$set"
case "$set" in
  sift5k) nlist=64 ;; deep10k) nlist=100 ;;
  *) echo "ab_quiverd.sh: data set sift5k or deep10k" >&2; exit 2 ;;
esac
base=$d/${set}_base.fvecs qf=$d/${set}_query.fvecs gt=$d/${set}_groundtruth.ivecs
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
$Q index build --input "$base" --spec "IVF$nlist,Flat" --metric l2 --out "$tmp/idx" >/dev/null 2>&1
declare -A port
for side in A B; do
  bin=${!side}
  "$bin" --listen 127.0.0.1:0 --port-file "$tmp/$side.port" --data-dir "$tmp/data-$side" \
    --log-level warn >"$tmp/$side.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/$side.port" ] && break; sleep 0.1; done
  port[$side]=$(cat "$tmp/$side.port")
  for _ in $(seq 100); do $Q --server 127.0.0.1:${port[$side]} health >/dev/null 2>&1 && break; sleep 0.1; done
  $Q --server 127.0.0.1:${port[$side]} push c --index "$tmp/idx" --create >/dev/null
done
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
run() { # run SIDE BATCH CONCURRENCY -> queries/s
  jget "$($Q --server 127.0.0.1:${port[$1]} bench c --queries "$qf" --groundtruth "$gt" --k 10 \
          --nprobe 16 --batch "$2" --concurrency "$3" --duration "$secs" --warmup 0.5 --json)" \
       queries_per_s
}
median() { python3 -c 'import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 1))' "$@"; }
echo "### A = $A"
echo "### B = $B"
echo "data $set, IVF$nlist,Flat, l2, k 10, nprobe 16, $rounds rounds of ${secs} s per side and load, A B alternating, $(nproc) cores"
echo
echo "| load | A queries/s (median) | B queries/s (median) | B/A | A rounds | B rounds |"
echo "|---|---|---|---|---|---|"
for load in "64 4" "1 64"; do
  read -r batch conc <<<"$load"
  ra=() rb=()
  for _ in $(seq "$rounds"); do
    ra+=("$(run A "$batch" "$conc")")
    rb+=("$(run B "$batch" "$conc")")
  done
  ma=$(median "${ra[@]}") mb=$(median "${rb[@]}")
  echo "| $batch query/call, $conc in flight | $ma | $mb | $(python3 -c "print(round($mb / $ma, 3))") | ${ra[*]} | ${rb[*]} |"
done
