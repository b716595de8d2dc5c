#!/usr/bin/env bash
# Soak: a mixed load through a real quiverd for N minutes, one row of figures a minute, then a
# consistency check of the collection against a model of the acknowledged writes (after the run,
# and again after restarting quiverd on the same data dir). Prints PASS or FAIL; exit 0 / 1
# (2: could not set up).
#
#   bench/soak.sh [--minutes N] [--keep] [driver options: bench/soak.sh --help-driver]
#
# Load (defaults): 4 search clients at batch 1 + 2 at batch 64 (k 10), 2 writers (Upsert 16 new +
# 16 replaced ids, then Delete 16 ids, 5 times a second each), BuildIndex at seconds 15 and 45 of
# every minute, one ImportIndex of an index built offline (`quiver index build`) at half time,
# Describe every 0.5 s; deep10k from ../shared/data, IVF64,Flat. Per minute: search q/s and p99
# of each batch size, upserts/s, deletes/s, builds, quiverd's RSS (VmRSS), open fds and threads;
# at the end whether RSS and fds stayed flat after warm-up (last minute against minute 2).
#
# Needs build/bin/quiverd and build/bin/quiver (QUIVER_BIN_DIR overrides; when missing they are
# built in build-soak/). The driver (bench/soak_driver.py) runs in the virtual environment
# build-soak/venv (made here with grpcio, protobuf, numpy from PyPI; SOAK_VENV overrides) and
# uses the repository's Python client from clients/python as it is (PYTHONPATH). quiverd runs on
# 127.0.0.1 (a free port, --port-file) with its data in a temporary directory, removed after a
# PASS (kept after a FAIL, or with --keep); it is always stopped at the end. Its log and the
# driver's events.log are copied to build-soak/last/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

minutes=10
keep=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift ;;
    --minutes=*) minutes=${1#*=} ;;
    --keep) keep=1 ;;
    -h|--help) sed -n 2,22p "$0"; exit 0 ;;
    --help-driver) args+=(--help) ;;
    *) args+=("$1") ;;
  esac
  shift
done

bin=${QUIVER_BIN_DIR:-$repo/build/bin}
if [ ! -x "$bin/quiverd" ] || [ ! -x "$bin/quiver" ]; then
  echo "soak.sh: $bin/quiverd or quiver missing: building them in build-soak/" >&2
  cmake -S . -B build-soak -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-soak -j2 --target quiverd quiver >/dev/null
  bin=$repo/build-soak/bin
fi

venv=${SOAK_VENV:-$repo/build-soak/venv}
py=$venv/bin/python
if ! PYTHONPATH=$repo/clients/python "$py" -c 'import grpc, numpy, quiver_client' 2>/dev/null; then
  echo "soak.sh: making $venv (grpcio, protobuf, numpy from PyPI)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "${PYTHON:-python3}" -m venv "$venv"
  # The lower bounds of clients/python/pyproject.toml.
  "$py" -m pip install -q --disable-pip-version-check 'grpcio>=1.85.1' 'protobuf>=7.35.1' \
    'numpy>=1.23'
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/quiver-soak.XXXXXX")
status=2
cleanup() {
  # The driver stops quiverd itself; this is for a driver that died without doing so. Only the
  # pid the driver recorded, and only while it is still a quiverd on this soak's data dir.
  local pidf=$work/quiverd.pid pid
  if [ -f "$pidf" ]; then
    pid=$(cat "$pidf")
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
       { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$work/data"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # The logs of the last run stay in build-soak/last/ (quiverd.log, events.log: builds, the
  # import and every call over --slow-ms, in seconds since the load started).
  mkdir -p "$repo/build-soak/last"
  rm -f "$repo/build-soak/last/"*
  cp "$work/quiverd.log" "$work/events.log" "$repo/build-soak/last/" 2>/dev/null || true
  if [ "$status" = 0 ] && [ "$keep" = 0 ]; then
    rm -rf "$work"
  else
    echo "soak.sh: kept $work (quiverd.log, data/)" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set +e
PYTHONPATH=$repo/clients/python${PYTHONPATH:+:$PYTHONPATH} "$py" "$repo/bench/soak_driver.py" \
  --minutes "$minutes" --quiverd "$bin/quiverd" --quiver "$bin/quiver" --workdir "$work" \
  ${args[@]+"${args[@]}"}
status=$?
set -e
exit "$status"
