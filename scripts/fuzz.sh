#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of tests/fuzz (clang, ASan + UBSan, coverage-guided).
#
#   scripts/fuzz.sh                    every target for 30 s (what scripts/test.sh runs in CI)
#   scripts/fuzz.sh --minutes 10       a longer local run, every target
#   scripts/fuzz.sh --seconds 60 rpc dir   chosen targets (rpc vecfile dir manifest wal)
#   scripts/fuzz.sh --make-seeds       rewrite the committed seed corpora (tests/fuzz/corpus)
#
# First every target runs once over its committed seeds and tests/fuzz/regress/TARGET (inputs
# that crashed it once: a regression check), then fuzzes for the time given, two targets at a
# time by default (--jobs N). Each grows a working corpus under build-fuzz/corpus/TARGET (kept
# between runs, never committed). A crash, leak, timeout (-timeout 25 s per input) or an input
# past 2 GiB of memory fails the run: the reproducer is saved under build-fuzz/artifacts/ and the
# command to replay it is printed. The last lines are a table of executions per target.
#
# Environment: QUIVER_FUZZ_SECONDS (default 30), QUIVER_FUZZ_JOBS (default: cores), TMPDIR (the
# targets' scratch directories; /dev/shm when it exists: saves fsync).
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
. scripts/errtrap.sh
. scripts/ccache-env.sh

ALL=(rpc vecfile dir manifest wal)
seconds=${QUIVER_FUZZ_SECONDS:-30}
jobs=${QUIVER_FUZZ_JOBS:-$(nproc)}
make_seeds=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift ;;
    --minutes) seconds=$(($2 * 60)); shift ;;
    --jobs) jobs=$2; shift ;;
    --make-seeds) make_seeds=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (${ALL[*]})" >&2; exit 2; }
done

command -v clang >/dev/null ||
  qv_die "clang is missing: run scripts/bootstrap.sh (it installs clang and libclang-rt-14-dev)"
qv_step "building build-fuzz/ (clang, ASan + UBSan + libFuzzer)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DQUIVER_SANITIZE=ON \
  -DQUIVER_FUZZ=ON -DQUIVER_CUDA=OFF -DQUIVER_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_make_seeds "${targets[@]/#/fuzz_}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export OMP_NUM_THREADS=1 # one input at a time; thread pools only slow the targets down
[ -n "${TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm; }

if [ "$make_seeds" = 1 ]; then
  qv_step "writing the seed corpora"
  rm -rf tests/fuzz/corpus
  build-fuzz/fuzz/fuzz_make_seeds tests/fuzz/corpus
  du -sh tests/fuzz/corpus/*
  exit 0
fi

mkdir -p build-fuzz/artifacts build-fuzz/logs
bin() { echo "build-fuzz/fuzz/fuzz_$1"; }

# 1. The committed seeds and regression inputs, each once.
for t in "${targets[@]}"; do
  qv_step "replaying the seeds and regression inputs of $t"
  dirs=(tests/fuzz/corpus/"$t")
  [ -d tests/fuzz/regress/"$t" ] && dirs+=(tests/fuzz/regress/"$t")
  if ! "$(bin "$t")" -runs=0 -timeout=25 -rss_limit_mb=2048 \
      -artifact_prefix=build-fuzz/artifacts/"$t"- "${dirs[@]}" >build-fuzz/logs/"$t"-replay.log 2>&1; then
    tail -40 build-fuzz/logs/"$t"-replay.log >&2
    qv_die "fuzz_$t fails on a committed input (log: build-fuzz/logs/$t-replay.log)"
  fi
done

# 2. Fuzz, $jobs targets at a time.
run_one() { # $1 = target
  local t=$1 corpus=build-fuzz/corpus/$1
  mkdir -p "$corpus"
  "$(bin "$t")" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/"$t"- "$corpus" tests/fuzz/corpus/"$t" \
    >build-fuzz/logs/"$t".log 2>&1
}
echo "fuzzing ${targets[*]} for ${seconds} s each, $jobs at a time (clang $(clang -dumpversion), ASan + UBSan)"
qv_step "fuzzing"
declare -A pid_of rc_of
queue=("${targets[@]}")
running=()
while [ ${#queue[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
  while [ ${#queue[@]} -gt 0 ] && [ ${#running[@]} -lt "$jobs" ]; do
    t=${queue[0]}
    queue=("${queue[@]:1}")
    run_one "$t" &
    pid_of[$t]=$!
    running+=("$t")
  done
  wait -n || true
  still=()
  for t in "${running[@]}"; do
    if kill -0 "${pid_of[$t]}" 2>/dev/null; then
      still+=("$t")
    else
      rc=0
      wait "${pid_of[$t]}" || rc=$?
      rc_of[$t]=$rc
    fi
  done
  running=("${still[@]}")
done

failed=0
printf '%-9s %8s %12s %8s %6s %8s  %s\n' target seconds executions exec/s cov corpus result
for t in "${targets[@]}"; do
  log=build-fuzz/logs/$t.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  files=$(find build-fuzz/corpus/"$t" -type f | wc -l)
  result=ok
  if [ "${rc_of[$t]}" != 0 ]; then
    result="FAILED (exit ${rc_of[$t]})"
    failed=1
  fi
  printf '%-9s %8s %12s %8s %6s %8s  %s\n' "$t" "$seconds" "${runs:-?}" "${rate:-?}" \
    "${cov:-?}" "$files" "$result"
done
if [ "$failed" = 1 ]; then
  for t in "${targets[@]}"; do
    [ "${rc_of[$t]}" = 0 ] && continue
    echo "---- fuzz_$t: the end of build-fuzz/logs/$t.log ----" >&2
    grep -v '^#[0-9]' build-fuzz/logs/"$t".log | tail -60 >&2
    for a in build-fuzz/artifacts/"$t"-*; do
      [ -e "$a" ] || continue
      echo "reproducer: $a  (replay: $(bin "$t") $a; keep it: cp $a tests/fuzz/regress/$t/)" >&2
    done
  done
  qv_die "a fuzz target failed (above)"
fi
