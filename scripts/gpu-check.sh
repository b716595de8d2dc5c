#!/usr/bin/env bash
# The one GPU check: built here, run once on a bare GPU host (no network, no -dev packages), and
# rehearsed here first in a fresh Debian root. docs/gpu.md ("Running the GPU check") has the
# device-tool call to use.
#
#   scripts/gpu-check.sh prepare    here (nvcc, no GPU needed): GPU FAISS (bootstrap --with-gpu,
#                                   cached), a Release build of the GPU binaries, then one archive
#                                   .gpu-carry/carry.tar.xz (and xz, for hosts without it): the
#                                   binaries, libfaiss, every library
#                                   they load beyond glibc, the NVIDIA driver and CUDA 13's own
#                                   (cudart, cuBLAS), and the deep10k/sift5k data sets
#   scripts/gpu-check.sh run        there, from the repo root with .gpu-carry carried: unpacks it,
#                                   prints ldd of every binary, then the checks below
#   scripts/gpu-check.sh rehearse   here: `prepare`, then `run` on the carried tree in a fresh
#                                   bookworm root with only /usr/local/cuda bound (no driver):
#                                   every library must resolve and the run must end at "no CUDA
#                                   device" (exit 3) with its partial results written
#
# `run` writes under $OUT (default ./gpu-results) as it goes, so a timeout still returns what was
# measured: summary.md (notes, then the tables), notes.md, results.jsonl (one JSON object per
# measurement, with a "step"), ldd.txt, tests.log, quiverd.log, run.log. Its steps, at most ~6 minutes on an H200:
#   1. the `gpu` CTest label's binaries (GPU vs CPU top-10 overlap >= 0.99 for Flat, IVF-Flat,
#      SQ8, PQ at nprobe 1/16/100; tombstones; the budget fallback; the CUDA kernels' twins)
#   2. rerank_bench: the CUDA rerank twins vs the CPU twins (bit-identical) and their timing
#   3. gpu_search on deep10k and a generated 1M x 128 set: Quiver GPU-resident beside FAISS GPU
#      in-process, batch 1/64/1024/10000, recall@10 of both, the memory-bandwidth bound per row
#   4. quiverd --device gpu --batch-leaders 1 under `quiver bench`: 1, 64 and 256 concurrent
#      batch-1 clients and batch 64, with QPS, p50/p99 and queries per index search
# Exit status: 0 all passed; 1 a check failed; 2 the carry is missing or a library is unresolved;
# 3 no CUDA device (after the checks that need none).
#   GPU_CHECK_SYNTH=NxD   the generated set's size (default 1000000x128)
#   GPU_CHECK_QUICK=1     shorter benchmarks (a rerun when time is short)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
CARRY=.gpu-carry
ARCHS=${QUIVER_CUDA_ARCHS:-90}
BINS=(test_kernels_gpu test_kernels test_index_gpu rerank_bench gpu_search quiverd quiver)

# ---- here: build and pack ----------------------------------------------------------------------
prepare() {
  set -e
  . scripts/errtrap.sh
  qv_step "setting up FAISS with GPU (scripts/bootstrap.sh --with-gpu)"
  scripts/bootstrap.sh --with-gpu >/dev/null
  local prefix build=build-gpu-carry
  prefix=$(scripts/bootstrap.sh --print-prefix --with-gpu)
  qv_step "building the GPU binaries ($build, Release, sm_$ARCHS)"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQUIVER_CUDA=ON \
    -DQUIVER_CUDA_ARCHITECTURES="$ARCHS" -DQUIVER_FAISS_PREFIX="$prefix" >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "${BINS[@]}"
  qv_step "staging the carry"
  local stage
  stage=$(mktemp -d "${TMPDIR:-/tmp}/qv-carry.XXXXXX")
  mkdir -p "$stage/bin" "$stage/lib/fallback" "$stage/data"
  local b
  for b in "${BINS[@]}"; do
    if [ -x "$build/tests/$b" ]; then cp "$build/tests/$b" "$stage/bin/"; else cp "$build/bin/$b" "$stage/bin/"; fi
  done
  cp -a "$prefix"/lib/*.so* "$stage/lib/"
  # Every library the binaries and FAISS load, except glibc (the host's own), the driver and
  # CUDA's toolkit libraries (the host's CUDA 13). libstdc++/libgcc_s go to lib/fallback: used
  # only when the host's are older than what the binaries need.
  local lib real base
  for f in "$stage"/bin/* "$stage"/lib/*.so*; do
    LD_LIBRARY_PATH="$stage/lib" ldd "$f" | awk '/=> \// {print $3}'
  done | sort -u | while read -r lib; do
    real=$(readlink -f "$lib")
    base=$(basename "$lib")
    case "$real" in /usr/local/cuda*|"$stage"/*) continue ;; esac
    case "$base" in
      libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|\
      ld-linux*|libcuda.so.*|libnvidia-*) continue ;;
      libstdc++.so.*|libgcc_s.so.*) cp -L "$lib" "$stage/lib/fallback/$base" ;;
      *) cp -L "$lib" "$stage/lib/$base" ;;
    esac
  done
  strip --strip-unneeded "$stage"/bin/* "$stage"/lib/*.so* "$stage"/lib/fallback/* 2>/dev/null || true
  local data=../shared/data
  [ -d "$data/deep10k" ] && cp -a "$data/deep10k" "$stage/data/"
  [ -d "$data/sift5k" ] && cp -a "$data/sift5k" "$stage/data/"
  git rev-parse --short HEAD >"$stage/COMMIT" 2>/dev/null || true
  (cd "$stage" && find . -type f ! -name MANIFEST -exec sha256sum {} + | sort -k2 >MANIFEST)
  rm -rf "$CARRY" && mkdir -p "$CARRY/unxz"
  qv_step "compressing the carry (xz)" "prepare needs xz here: apt-get install xz-utils"
  command -v xz >/dev/null || qv_die "xz is not installed"
  tar -C "$stage" -cf - . | xz -6 -T"$(nproc)" >"$CARRY/carry.tar.xz"
  rm -rf "$stage"
  # xz itself for hosts without it (a minimal Debian has only gzip): 0.3 MB beside the archive
  cp -L "$(command -v xz)" "$CARRY/unxz/xz"
  cp -L "$(ldd "$(command -v xz)" | awk '/liblzma/ {print $3}')" "$CARRY/unxz/"
  local mb
  mb=$(( $(du -sb "$CARRY" | cut -f1) / 1048576 ))
  echo "prepared $CARRY: ${mb} MiB (limit 60); carry it as .gpu-carry"
  [ "$mb" -lt 60 ] || qv_die "the carry is ${mb} MiB, over the 60 MiB it must stay under"
}

# ---- there: unpack, resolve, check -------------------------------------------------------------
out=${OUT:-$PWD/gpu-results}
note() { tee -a "$out/notes.md"; summarize; }   # lines on stdin: into the summary's notes
say() { echo "gpu-check: $*" | note >&2; }
jsonl() { # step, then JSON lines on stdin: each gets "step" and goes to results.jsonl and stdout
  local step=$1 line
  while IFS= read -r line; do
    case "$line" in
      "{"*) line="{\"step\": \"$step\", ${line#\{}"; echo "$line" >>"$out/results.jsonl"; echo "$line" ;;
      *) echo "$line" ;;
    esac
  done
}
summarize() { # summary.md = the notes, then the tables from results.jsonl (python3 on the GPU host)
  if command -v python3 >/dev/null &&
     python3 scripts/gpu_summary.py "$out/results.jsonl" "$out/notes.md" "$out/summary.md"; then
    return 0
  fi
  cp "$out/notes.md" "$out/summary.md"
}

unpack() {
  local dir=$1
  [ -f "$CARRY/carry.tar.xz" ] ||
    { echo "gpu-check: $CARRY/carry.tar.xz missing: run 'scripts/gpu-check.sh prepare' here and carry $CARRY" >&2; exit 2; }
  rm -rf "$dir" && mkdir -p "$dir"
  local xz=(xz)
  command -v xz >/dev/null || xz=(env LD_LIBRARY_PATH="$PWD/$CARRY/unxz" "$PWD/$CARRY/unxz/xz")
  "${xz[@]}" -dc "$CARRY/carry.tar.xz" | tar -C "$dir" -xf - ||
    { echo "gpu-check: could not unpack $CARRY/carry.tar.xz" >&2; exit 2; }
  (cd "$dir" && sha256sum --quiet -c MANIFEST) ||
    { echo "gpu-check: the carry's MANIFEST does not match its files" >&2; exit 2; }
}

# Directories holding CUDA 13's runtime and cuBLAS, and the driver, on this host.
cuda_lib_dirs() {
  local d c
  for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" "${CUDA_HOME:-/usr/local/cuda}/targets/x86_64-linux/lib" \
           /usr/local/cuda/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && echo "$d"
  done
  # pip's CUDA wheels (the PyTorch image's venv) when the toolkit lacks cuBLAS
  for c in /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib /usr/local/lib/python3*/dist-packages/nvidia/*/lib; do
    [ -d "$c" ] && echo "$c"
  done
}

resolve() { # $1 = unpacked carry: sets LD_LIBRARY_PATH so every library resolves, or exit 2
  local dir=$1 dirs missing f
  dirs=$(cuda_lib_dirs | paste -sd: -)
  export LD_LIBRARY_PATH="$dir/lib${dirs:+:$dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  check_ldd() {
    : >"$out/ldd.txt"
    for f in "$dir"/bin/* "$dir"/lib/*.so*; do
      echo "== $(basename "$f")" >>"$out/ldd.txt"
      ldd "$f" >>"$out/ldd.txt" 2>&1
    done
    # the driver is the host's: on a machine without one (the rehearsal) it is the only gap
    grep 'not found' "$out/ldd.txt" | grep -v 'libcuda\.so' | sort -u
  }
  missing=$(check_ldd)
  if [ -n "$missing" ]; then
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$dir/lib/fallback"
    missing=$(check_ldd)
    [ -n "$missing" ] || say "the host's libstdc++/libgcc_s are too old: using the carried ones"
  fi
  cat "$out/ldd.txt"
  if [ -n "$missing" ]; then
    say "libraries not resolved (LD_LIBRARY_PATH=$LD_LIBRARY_PATH):"
    echo "$missing" | note >&2
    exit 2
  fi
  if grep -q 'libcuda\.so.*not found' "$out/ldd.txt"; then
    say "every library resolved except the NVIDIA driver's libcuda.so.1 (no driver on this host)"
  else
    say "every library resolved"
  fi
}

checks() {
  local dir=$1 bin=$1/bin rc=0 t0=$SECONDS quick=${GPU_CHECK_QUICK:-0}
  export QUIVER_DATA_DIR=$dir/data OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
  {
    echo "# GPU check ($(cat "$dir/COMMIT" 2>/dev/null || echo '?'), $(date -u +%FT%TZ))"
    echo
    echo "host: $(nproc) cores, $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
  } >"$out/notes.md"
  : >"$out/results.jsonl"
  resolve "$dir"
  if command -v nvidia-smi >/dev/null; then (nvidia-smi -L 2>&1 || true) | note
  else echo "nvidia-smi: not on this host" | note; fi

  # 0. the CPU twins, which need no device: proves the carried binaries run here
  "$bin/test_kernels" >"$out/tests.log" 2>&1 && say "CPU kernel tests passed" ||
    { say "CPU kernel tests FAILED (tests.log)"; rc=1; }
  local probe
  probe=$("$bin/gpu_search" --devices 2>&1)
  local prc=$?
  echo "$probe" | note
  if [ $prc = 3 ]; then
    say "no CUDA device: stopping after the checks that need none (${SECONDS}s)"
    exit 3
  elif [ $prc != 0 ]; then
    say "the device probe failed (exit $prc)"; exit 1
  fi

  # 1. the gpu label's tests
  local t
  for t in test_kernels_gpu test_index_gpu; do
    if timeout 150 "$bin/$t" >>"$out/tests.log" 2>&1; then say "$t passed"; else say "$t FAILED (tests.log)"; rc=1; fi
  done
  grep -E '^\[ gpu \]|SKIPPED|FAILED' "$out/tests.log" | note | tail -40
  say "step 1 done at ${SECONDS}s"

  # 2. rerank twins
  local args
  for args in "--queries 256 --candidates 1000 --features 4" \
              "--queries 1024 --candidates 1000 --features 4" \
              "--queries 256 --candidates 1000 --features 4 --mmr 0.5"; do
    # shellcheck disable=SC2086
    timeout 60 "$bin/rerank_bench" $args --json | jsonl rerank || rc=1
  done
  grep -q '"identical": false' "$out/results.jsonl" && { say "rerank: CUDA and CPU twins DIFFER"; rc=1; }
  summarize
  say "step 2 done at $((SECONDS - t0))s"

  # 3. search: Quiver GPU-resident beside FAISS GPU
  local reps=3
  [ "$quick" = 1 ] && reps=1
  timeout 120 "$bin/gpu_search" --data "$QUIVER_DATA_DIR/deep10k/deep10k" --reps $reps \
    --specs "Flat;IVF100,Flat;IVF100,SQ8;IVF100,PQ16" --nprobes 1,16,100 \
    --batches 1,64,1024,10000 | jsonl gpu_search || rc=1
  summarize
  timeout 200 "$bin/gpu_search" --synth "${GPU_CHECK_SYNTH:-1000000x128}" --reps $reps \
    --specs "IVF1024,Flat;IVF1024,SQ8" --nprobes 8,32,128 \
    --batches 1,64,1024,10000 | jsonl gpu_search || rc=1
  summarize
  say "step 3 done at $((SECONDS - t0))s"

  # 4. quiverd on the GPU under quiver bench
  serve "$bin" || rc=1
  summarize
  say "all steps done at $((SECONDS - t0))s (exit $rc)"
  exit $rc
}

serve() { # step 4; $1 = bin dir
  local bin=$1 port=${GPU_CHECK_PORT:-17070} dd=/tmp/qv-gpucheck-data syn=/tmp/qv-gpucheck-synth
  local dur=8 cthreads=$(( ($(nproc) + 1) / 2 )) n=${GPU_CHECK_SYNTH:-1000000x128} dev=${GPU_CHECK_DEVICE:-gpu}
  n=${n%%x*}
  [ "${GPU_CHECK_QUICK:-0}" = 1 ] && dur=3
  local Q=("$bin/quiver" --server 127.0.0.1:$port --timeout 300)
  rm -rf "$dd" && mkdir -p "$dd" "$syn"
  timeout 120 "$bin/quiver" data synth --out "$syn/s" --n "$n" --queries 2000 --dim 128 >/dev/null ||
    { say "quiverd: could not generate the data"; return 1; }
  "$bin/quiverd" --listen 127.0.0.1:$port --data-dir "$dd" --device "$dev" --gpu-fallback error \
    --batch-leaders 1 >"$out/quiverd.log" 2>&1 &
  local pid=$!
  local i
  for i in $(seq 100); do "${Q[@]}" health >/dev/null 2>&1 && break; sleep 0.2; done
  local ok=0
  if "${Q[@]}" create s --dim 128 --spec IVF1024,Flat --device "$dev" >/dev/null &&
     timeout 120 "${Q[@]}" upsert s --input "$syn/s_base.fvecs" >/dev/null &&
     timeout 180 "${Q[@]}" build s >/dev/null; then
    ok=1
    "${Q[@]}" describe s | note
  else
    say "quiverd: create/upsert/build failed (quiverd.log)"
  fi
  jnum() { echo "$1" | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$2\": *\([0-9.]*\).*/\1/p" | head -1; }
  qb() { # queries and index searches of collection s so far
    local j
    j=$("${Q[@]}" describe s --json) && echo "$(jnum "$j" batched_queries) $(jnum "$j" batches)"
  }
  local c b q0 s0 q1 s1 line
  if [ $ok = 1 ]; then
    for cb in "1 1" "64 1" "256 1" "16 64"; do
      read -r c b <<<"$cb"
      read -r q0 s0 < <(qb)
      line=$(timeout $((dur + 30)) "${Q[@]}" bench s --queries "$syn/s_query.fvecs" \
        --groundtruth "$syn/s_groundtruth.ivecs" --k 10 --nprobe 32 --concurrency "$c" --batch "$b" \
        --threads "$cthreads" --duration "$dur" --warmup 1 --json) || ok=0
      read -r q1 s1 < <(qb)
      if [ -n "$line" ] && [ -n "${q1:-}" ]; then
        echo "${line%\}}, \"queries_per_index_search\": $(awk -v a="$q0" -v b="$s0" -v c="$q1" -v d="$s1" \
          'BEGIN {s = d - b; printf "%.1f", (s > 0 ? (c - a) / s : 0)}'), \"serving\": \"quiverd --device $dev --batch-leaders 1, $(nproc) cores\", \"n\": $n, \"spec\": \"IVF1024,Flat\"}" |
          jsonl quiverd
      fi
      summarize
    done
  fi
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -rf "$dd" "$syn"
  [ $ok = 1 ]
}

rehearse() {
  set -e
  prepare
  . scripts/errtrap.sh
  qv_step "rehearsing the run in a fresh bookworm root"
  local tmp shared
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/qv-rehearsal.XXXXXX")
  shared=$(cd .. && pwd)/shared
  # fresh-debian.sh clones the committed tree: give it a clone whose last commit holds what the
  # device tool would send (the working tree's tracked and untracked files) and the carry
  git clone -q . "$tmp/main"
  git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t "$tmp/main"
  cp -a "$CARRY" "$tmp/main/"
  git -C "$tmp/main" add -A
  git -C "$tmp/main" add -f "$CARRY"
  git -C "$tmp/main" -c user.name=rehearsal -c user.email=rehearsal@localhost commit -qm "carry"
  cp -a "$shared" "$tmp/shared"
  local rc=0
  (cd "$tmp/main" && FRESH_CUDA=1 "$tmp/shared/tools/fresh-debian.sh" \
     'OUT=/tmp/gpu-results scripts/gpu-check.sh run; rc=$?; echo "== summary.md"; cat /tmp/gpu-results/summary.md; ls -l /tmp/gpu-results; exit $rc') ||
    rc=$?
  rm -rf "$tmp"
  if [ "$rc" = 3 ]; then
    echo "gpu-check rehearsal: passed (every library resolved, 'no CUDA device', exit 3)"
  else
    echo "gpu-check rehearsal: FAILED (the run exited $rc; expected 3, no CUDA device)" >&2
    exit 1
  fi
}

case "$mode" in
  prepare) prepare ;;
  run)
    mkdir -p "$out"
    dir=${GPU_CHECK_DIR:-/tmp/qv-gpu-carry}
    unpack "$dir"
    checks "$dir" 2>&1 | tee "$out/run.log"
    exit "${PIPESTATUS[0]}"
    ;;
  rehearse) rehearse ;;
  serve) # step 4 alone, for a dry run on the CPU: GPU_CHECK_DEVICE=cpu GPU_CHECK_SYNTH=20000x128
    out=${OUT:-$PWD/gpu-results}; mkdir -p "$out"; : >"$out/notes.md"; : >"$out/results.jsonl"
    serve "${2:-build/bin}"
    ;;
  *)
    sed -n '2,33p' "$0"
    exit 2
    ;;
esac
