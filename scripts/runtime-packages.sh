#!/usr/bin/env bash
# Prints the distribution packages that own the shared libraries the given binaries load (what a
# runtime image must install), one per line. Libraries no package owns (FAISS under the Quiver
# cache, CUDA under /usr/local/cuda in NVIDIA's images) are left out: they come with the image or
# are copied beside the binaries. Used by the Dockerfile's runtime stages, so the package names
# follow whatever distribution the build stage runs (Debian 12, or Ubuntu in NVIDIA's images).
#
#   scripts/runtime-packages.sh build/bin/quiverd build/bin/quiver
set -euo pipefail
for bin in "$@"; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  real=$(readlink -f "$lib")
  dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true
done | cut -d: -f1 | sed 's/,.*//' | sort -u
