#!/usr/bin/env bash
# A whole Quiver fleet on loopback: 3 etcd members, 3 NATS JetStream servers, 4 shard servers
# (quiverd) and 2 routers (quiverd --role router), on ports the kernel picks. The quiver CLI talks
# to a router exactly as to a single quiverd. docs/cluster.md explains the parts.
#
#   scripts/fleet.sh demo      up; a 2 shards x 2 replicas collection of sift5k (or generated
#                              vectors) created, upserted, built and searched through the routers
#                              (recall@10); a shard server killed -9; the repair shown by
#                              `quiver cluster status`; a rollout of version 2 (built offline
#                              per shard) and a rollback (docs/rollout.md); down
#   scripts/fleet.sh up        start it and print how to reach it (QUIVER_SERVER=router)
#   scripts/fleet.sh status    quiver cluster status through the first router
#   scripts/fleet.sh kill N    kill -9 shard server nN (0..3)
#   scripts/fleet.sh start N   start shard server nN again
#   scripts/fleet.sh down      stop everything `up` started
#
# QUIVER_FLEET_DIR (default ./quiver-fleet) holds every process's data, log and pid; `up` builds
# build/bin/quiverd and quiver (Release) first when they are missing.
cd "$(dirname "$0")/.."
. scripts/errtrap.sh
DIR=${QUIVER_FLEET_DIR:-./quiver-fleet}
Q=build/bin/quiver
QD=build/bin/quiverd
NODES=4
ROUTERS=2

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a process in the background with its log; its pid goes to $DIR/pids/NAME.
launch() {
  local name=$1
  shift
  mkdir -p "$DIR/pids" "$DIR/logs"
  setsid "$@" >"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name"
  disown # no job-control notice when one is killed on purpose
}

running() {
  [ -f "$DIR/pids/$1" ] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null
}

wait_for() { # what, seconds, command...
  local what=$1 secs=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  qv_die "$what did not come up in ${secs} s (logs in $DIR/logs)"
}

node_flags() { # i
  echo --listen 127.0.0.1:0 --port-file "$DIR/n$1.port" --data-dir "$DIR/n$1" \
    --cluster "$(cat "$DIR/cluster")" --node-id "n$1" --lease-s 3 --map-poll-ms 200
}

start_node() { # i
  rm -f "$DIR/n$1.port"
  # shellcheck disable=SC2046
  launch "n$1" "$QD" $(node_flags "$1")
  wait_for "shard server n$1" 30 test -s "$DIR/n$1.port"
}

cmd_up() {
  if [ ! -x "$QD" ] || [ ! -x "$Q" ]; then
    qv_step "setting up (scripts/bootstrap.sh) and building quiverd and quiver (build/, Release)"
    scripts/bootstrap.sh >/dev/null
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j"$(nproc)" --target quiver quiverd >/dev/null
  fi
  command -v etcd >/dev/null && command -v nats-server >/dev/null ||
    qv_die "etcd and nats-server are needed (scripts/bootstrap.sh installs them)"
  [ -d "$DIR/pids" ] && ls "$DIR/pids" | grep -q . &&
    qv_die "$DIR already holds a fleet: scripts/fleet.sh down first (or QUIVER_FLEET_DIR=...)"
  mkdir -p "$DIR"
  qv_step "starting 3 etcd members and 3 NATS JetStream servers on loopback"
  local initial="" etcd_eps="" nats_urls="" routes=()
  local cp=() pp=() np=() rp=()
  for i in 0 1 2; do
    cp[i]=$(free_port) pp[i]=$(free_port) np[i]=$(free_port) rp[i]=$(free_port)
    initial+="${initial:+,}e$i=http://127.0.0.1:${pp[i]}"
    etcd_eps+="${etcd_eps:+,}127.0.0.1:${cp[i]}"
    nats_urls+="${nats_urls:+,}nats://127.0.0.1:${np[i]}"
  done
  for i in 0 1 2; do
    launch "etcd$i" etcd --name "e$i" --data-dir "$DIR/etcd$i" \
      --listen-client-urls "http://127.0.0.1:${cp[i]}" \
      --advertise-client-urls "http://127.0.0.1:${cp[i]}" \
      --listen-peer-urls "http://127.0.0.1:${pp[i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${pp[i]}" \
      --initial-cluster "$initial" --initial-cluster-state new --logger zap --log-level warn
    routes=()
    for j in 0 1 2; do [ "$j" = "$i" ] || routes+=("nats://127.0.0.1:${rp[j]}"); done
    launch "nats$i" nats-server -a 127.0.0.1 -p "${np[i]}" -n "nats$i" -js -sd "$DIR/nats$i" \
      --cluster_name quiver --cluster "nats://127.0.0.1:${rp[i]}" \
      --routes "$(IFS=,; echo "${routes[*]}")"
  done
  echo "etcd=$etcd_eps,nats=$nats_urls" >"$DIR/cluster"
  wait_for "etcd" 30 env ETCDCTL_API=3 etcdctl --endpoints="$etcd_eps" endpoint health
  qv_step "starting $NODES shard servers and $ROUTERS routers"
  for i in $(seq 0 $((NODES - 1))); do start_node "$i"; done
  local router_addrs=""
  for i in $(seq 0 $((ROUTERS - 1))); do
    rm -f "$DIR/r$i.port"
    launch "r$i" "$QD" --role router --listen 127.0.0.1:0 --port-file "$DIR/r$i.port" \
      --data-dir "$DIR/r$i" --cluster "$(cat "$DIR/cluster")" --node-id "r$i" --lease-s 3 \
      --map-poll-ms 200
    wait_for "router r$i" 30 test -s "$DIR/r$i.port"
    router_addrs+="${router_addrs:+ }127.0.0.1:$(cat "$DIR/r$i.port")"
  done
  echo "QUIVER_SERVER=${router_addrs%% *}" >"$DIR/env"
  echo "$router_addrs" >"$DIR/routers"
  wait_for "the first router" 30 "$Q" --server "${router_addrs%% *}" health
  echo "fleet up in $DIR: routers $router_addrs"
  echo "  export QUIVER_SERVER=${router_addrs%% *}    # then: $Q cluster status"
}

cmd_down() {
  [ -d "$DIR/pids" ] || { echo "no fleet in $DIR"; return 0; }
  # Routers and shard servers first (a clean leave each), the engines last.
  for group in 'r*' 'n*' 'nats*' 'etcd*'; do
    for f in "$DIR"/pids/$group; do
      [ -f "$f" ] || continue
      kill -TERM "$(cat "$f")" 2>/dev/null
    done
    for f in "$DIR"/pids/$group; do
      [ -f "$f" ] || continue
      local pid
      pid=$(cat "$f")
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$f"
    done
  done
  echo "fleet in $DIR stopped (data and logs kept; rm -rf $DIR to forget it)"
}

router() {
  [ -f "$DIR/env" ] || qv_die "no fleet in $DIR: scripts/fleet.sh up first"
  sed -n 's/^QUIVER_SERVER=//p' "$DIR/env"
}

cmd_status() {
  "$Q" --server "$(router)" cluster status
}

# Waits until every shard of $1 has $2 in-sync replicas (quiver cluster status --json).
wait_in_sync() {
  local name=$1 want=$2 secs=${3:-120}
  for _ in $(seq $((secs * 5))); do
    "$Q" --server "$(router)" cluster status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
c = [c for c in s["collections"] if c["name"] == sys.argv[1]]
sys.exit(0 if c and all(x["in_sync"] >= int(sys.argv[2]) for x in c[0]["shard_status"]) else 1)
' "$name" "$want" && return 0
    sleep 0.2
  done
  qv_die "$name did not get $want in-sync replicas per shard in ${secs} s (scripts/fleet.sh status)"
}

cmd_demo() {
  cmd_up
  trap 'cmd_down' EXIT
  local data=${QUIVER_DATA_DIR:-../shared/data} prefix
  if [ -f "$data/sift5k/sift5k_base.fvecs" ]; then
    prefix="$data/sift5k/sift5k"
  else
    prefix="$DIR/synth"
    "$Q" data synth --out "$prefix" --n 5000 --queries 100 --dim 128 --clusters 64
  fi
  export QUIVER_SERVER
  QUIVER_SERVER=$(router)
  local second
  second=$(cut -d' ' -f2 "$DIR/routers")
  qv_step "a collection of 2 shards x 2 replicas through the routers ($prefix)"
  set -x
  "$Q" cluster status
  "$Q" create demo --dim 128 --spec IVF32,Flat --nprobe 8 --shards 2 --replicas 2
  "$Q" upsert demo --input "${prefix}_base.fvecs"
  { set +x; } 2>/dev/null
  wait_in_sync demo 2
  set -x
  "$Q" build demo
  "$Q" --server "$second" search demo --queries "${prefix}_query.fvecs" --k 10 \
    --groundtruth "${prefix}_groundtruth.ivecs"
  "$Q" cluster status
  { set +x; } 2>/dev/null
  local victim
  victim=$("$Q" cluster status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["collections"][0]["shard_status"][0]["replicas"][0]["node"])')
  qv_step "kill -9 shard server $victim; its replicas are re-created on the others"
  cmd_kill "${victim#n}"
  local t0=$SECONDS repaired=0
  "$Q" --server "$second" search demo --queries "${prefix}_query.fvecs" --k 10 \
    --groundtruth "${prefix}_groundtruth.ivecs"
  for _ in $(seq 600); do
    "$Q" cluster status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
c = s["collections"][0]
ok = all(x["in_sync"] >= 2 and all(r["node"] != sys.argv[1] for r in x["replicas"])
         for x in c["shard_status"])
sys.exit(0 if ok else 1)' "$victim" && repaired=1 && break
    sleep 0.2
  done
  [ "$repaired" = 1 ] || qv_die "the replicas of $victim were not re-created in 120 s:
$("$Q" cluster status)"
  echo "repaired $((SECONDS - t0)) s after the kill:"
  set -x
  "$Q" cluster status
  "$Q" search demo --queries "${prefix}_query.fvecs" --k 10 \
    --groundtruth "${prefix}_groundtruth.ivecs"
  { set +x; } 2>/dev/null
  qv_step "a rollout: version 2 built offline per shard, staged on every replica, flipped at once"
  set -x
  "$Q" index build --input "${prefix}_base.fvecs" --out "$DIR/demo-v2" --spec IVF64,Flat \
    --default-nprobe 16 --shards 2
  "$Q" rollout demo --index "$DIR/demo-v2" --hold 60
  "$Q" --server "$second" search demo --queries "${prefix}_query.fvecs" --k 10 \
    --groundtruth "${prefix}_groundtruth.ivecs"
  "$Q" rollout demo --status
  "$Q" rollback demo
  "$Q" search demo --queries "${prefix}_query.fvecs" --k 10 \
    --groundtruth "${prefix}_groundtruth.ivecs"
  { set +x; } 2>/dev/null
}

cmd_kill() {
  [ -n "${1:-}" ] || qv_die "scripts/fleet.sh kill N (a shard server, 0..$((NODES - 1)))"
  running "n$1" || qv_die "shard server n$1 is not running"
  kill -KILL "$(cat "$DIR/pids/n$1")"
  rm -f "$DIR/pids/n$1"
  echo "shard server n$1 killed -9"
}

cmd_start() {
  [ -n "${1:-}" ] || qv_die "scripts/fleet.sh start N"
  running "n$1" && qv_die "shard server n$1 is running"
  start_node "$1"
  echo "shard server n$1 started again"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  demo) cmd_demo ;;
  kill) cmd_kill "${2:-}" ;;
  start) cmd_start "${2:-}" ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
