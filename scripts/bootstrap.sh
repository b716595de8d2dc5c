#!/usr/bin/env bash
# Sets up everything Quiver needs on a Debian 12 machine. Idempotent: a second run only checks.
#
#   scripts/bootstrap.sh              Debian packages + FAISS 1.7.3 (CPU, C API) from Debian's source
#   scripts/bootstrap.sh --with-gpu   the same, plus a FAISS build with FAISS_ENABLE_GPU=ON (sm_90)
#   scripts/bootstrap.sh --print-prefix [--with-gpu]   print the FAISS install prefix and exit
#
# FAISS is built from Debian's `faiss` source package (Debian's prebuilt libfaiss-dev has no C API
# objects and targets the generic x86-64 baseline; see docs/dependencies.md). The install lands in a
# cache outside the repo, keyed by version and options:
#   ${QUIVER_CACHE:-$HOME/.cache/quiver}/faiss-<version>-<opt>-<cpu|gpu-smXX>
# The cache only saves time: when it is missing, this script rebuilds it.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/errtrap.sh"

FAISS_VERSION=1.7.3
WITH_GPU=0
PRINT_PREFIX=0
for a in "$@"; do
  case "$a" in
    --with-gpu) WITH_GPU=1 ;;
    --print-prefix) PRINT_PREFIX=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bootstrap.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

CACHE=${QUIVER_CACHE:-$HOME/.cache/quiver}
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then OPT=avx2; else OPT=generic; fi
CUDA_ARCHS=${QUIVER_CUDA_ARCHS:-90}
cpu_prefix="$CACHE/faiss-$FAISS_VERSION-$OPT-cpu"
# -q1: FAISS's C API with our one addition (faiss_GpuParameterSpace_new, see build_faiss).
gpu_prefix="$CACHE/faiss-$FAISS_VERSION-$OPT-gpu-sm${CUDA_ARCHS//;/-}-q1"
if [ "$PRINT_PREFIX" = 1 ]; then
  if [ "$WITH_GPU" = 1 ]; then echo "$gpu_prefix"; else echo "$cpu_prefix"; fi
  exit 0
fi

log() { printf '[bootstrap] %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# ---- Debian packages ---------------------------------------------------------------------------
PKGS=(build-essential cmake pkg-config git ca-certificates dpkg-dev
      ccache  # compiled objects kept across builds (scripts/ccache-env.sh), never required
      libopenblas-dev libgomp1
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
      googletest libgtest-dev libjansson-dev zlib1g-dev grpc-proto libmicrohttpd-dev openssl
      libroaring-dev  # CRoaring: the attribute postings of filters (docs/filters.md)
      python3-venv
      clang libclang-rt-14-dev libomp-14-dev  # the libFuzzer targets (scripts/fuzz.sh)
      # cluster mode: etcd (coordination; its v3 protos from the Go sources' package, with the
      # gogoproto and google.api files they import) and NATS JetStream (the replicated write log)
      etcd-server etcd-client golang-etcd-server-dev golang-github-gogo-protobuf-dev
      golang-github-grpc-ecosystem-grpc-gateway-dev libprotobuf-dev nats-server libnats-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  qv_step "installing Debian packages (${missing[*]})" \
    "check that apt can reach Debian's archive (apt-get update), then rerun scripts/bootstrap.sh"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- FAISS from Debian's source package --------------------------------------------------------
enable_deb_src() {
  # Derive a deb-src entry from the machine's own apt sources (no mirror host is named here).
  local said
  qv_step "deriving a deb-src apt entry (scripts/deb-src.sh)"
  said=$($SUDO "$here/deb-src.sh")
  log "deb-src: $said"
  # Always refresh: the source lists may be older than the entry (a FAISS build is rare and long).
  qv_step "running apt-get update for the deb-src entry"
  $SUDO apt-get update -qq
}

build_faiss() { # $1 = prefix, $2 = gpu (0/1)
  local prefix=$1 gpu=$2
  if [ -f "$prefix/.complete" ]; then
    log "FAISS cached at $prefix"
    return 0
  fi
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/quiver-faiss.XXXXXX")
  log "building FAISS $FAISS_VERSION ($OPT, gpu=$gpu) in $work -> $prefix"
  enable_deb_src
  qv_step "fetching Debian's faiss source package into $work" \
    "apt-get source needs a deb-src entry for bookworm main (scripts/deb-src.sh derives one)"
  (cd "$work" && apt-get source -qq --download-only "faiss=$FAISS_VERSION*" >/dev/null 2>&1 ||
     apt-get source -qq --download-only faiss >/dev/null)
  qv_step "unpacking the faiss source package in $work"
  (cd "$work" && dpkg-source -x --skip-patches ./faiss_*.dsc src >/dev/null)
  local src="$work/src"
  # Debian's packaging patches are for its own layout; we build upstream CMake as it is.
  local cmake_args=(-DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DBUILD_SHARED_LIBS=ON
    -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_C_API=ON -DFAISS_OPT_LEVEL="$OPT"
    -DBLA_VENDOR=OpenBLAS -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib
    -DCMAKE_INSTALL_RPATH='$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON)
  if [ "$gpu" = 1 ]; then
    # CUDA 13's CCCL needs C++17, and it refuses cublas.h and cublas_v2.h in one unit.
    sed -i 's/set(CMAKE_CXX_STANDARD 11)/set(CMAKE_CXX_STANDARD 17)/' "$src/CMakeLists.txt"
    sed -i 's/#include <cublas.h>/#include <cublas_v2.h>/' "$src/c_api/gpu/DeviceUtils_c.h"
    # FAISS 1.7.3's C API declares GpuParameterSpace but has no way to make one, so a C caller
    # cannot set nprobe on a GPU IVF index. Add the missing constructor (FAISS's own C++ shim;
    # Quiver stays C). Freed with faiss_ParameterSpace_free.
    sed -i 's|^FAISS_DECLARE_CLASS_INHERITED(GpuParameterSpace, ParameterSpace)$|&\n\n/// (added by Quiver'"'"'s bootstrap) a new GpuParameterSpace\nint faiss_GpuParameterSpace_new(FaissGpuParameterSpace** p_out);|' \
      "$src/c_api/gpu/GpuAutoTune_c.h"
    grep -q faiss_GpuParameterSpace_new "$src/c_api/gpu/GpuAutoTune_c.h" ||
      qv_die "patching GpuAutoTune_c.h failed (is this FAISS 1.7.3?)"
    cat >>"$src/c_api/gpu/GpuAutoTune_c.cpp" <<'CPP'

int faiss_GpuParameterSpace_new(FaissGpuParameterSpace** p_out) {
    try {
        *p_out = reinterpret_cast<FaissGpuParameterSpace*>(
                new faiss::gpu::GpuParameterSpace());
    }
    CATCH_AND_HANDLE
}
CPP
    cmake_args+=(-DFAISS_ENABLE_GPU=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS"
      -DCMAKE_CUDA_COMPILER="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")
  else
    cmake_args+=(-DFAISS_ENABLE_GPU=OFF)
  fi
  qv_step "configuring FAISS (log: $work/configure.log)"
  cmake -S "$src" -B "$work/build" "${cmake_args[@]}" >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log" >&2; qv_die "FAISS did not configure (log above, kept in $work)"; }
  local jobs
  jobs=$(nproc)
  local lib=faiss
  [ "$OPT" = avx2 ] && lib=faiss_avx2
  # With FAISS_OPT_LEVEL=avx2 the optimised library is the faiss_avx2 target: build it and point
  # the C API at it instead of the generic one.
  sed -i "s/target_link_libraries(faiss_c PRIVATE faiss)/target_link_libraries(faiss_c PRIVATE $lib)/; s/target_link_libraries(faiss_c PUBLIC faiss)/target_link_libraries(faiss_c PUBLIC $lib)/" \
    "$src/c_api/CMakeLists.txt"
  cmake -S "$src" -B "$work/build" >/dev/null
  qv_step "compiling FAISS (log: $work/build.log)"
  cmake --build "$work/build" -j"$jobs" --target "$lib" faiss_c >"$work/build.log" 2>&1 ||
    { tail -50 "$work/build.log" >&2; qv_die "FAISS did not compile (last 50 lines above; whole log in $work/build.log)"; }
  qv_step "installing FAISS into $prefix"
  rm -rf "$prefix.tmp"
  mkdir -p "$prefix.tmp/lib" "$prefix.tmp/include/faiss"
  cp -a "$work/build/faiss/lib$lib.so"* "$prefix.tmp/lib/"
  cp -a "$work/build/c_api/libfaiss_c.so"* "$prefix.tmp/lib/"
  # Only the C API headers: Quiver is C and never includes FAISS's C++ headers.
  mkdir -p "$prefix.tmp/include/faiss/c_api"
  (cd "$src/c_api" && find . -name '*.h' -print0 | xargs -0 -I{} cp --parents {} "$prefix.tmp/include/faiss/c_api/")
  cat >"$prefix.tmp/faiss.env" <<ENV
FAISS_VERSION=$FAISS_VERSION
FAISS_OPT_LEVEL=$OPT
FAISS_GPU=$gpu
FAISS_LIB=$lib
ENV
  touch "$prefix.tmp/.complete"
  rm -rf "$prefix"
  mv "$prefix.tmp" "$prefix"
  # RUNPATH is $ORIGIN: the prefix can move (e.g. carried to a GPU machine) and still load.
  rm -rf "$work"
  log "FAISS installed at $prefix"
}

build_faiss "$cpu_prefix" 0
if [ "$WITH_GPU" = 1 ]; then
  build_faiss "$gpu_prefix" 1
fi
echo "$cpu_prefix"
