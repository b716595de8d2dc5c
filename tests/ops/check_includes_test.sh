#!/usr/bin/env bash
# The include graph of the product (scripts/check_includes.py): clean on the tree as it is, and
# the checker catches what it is for — a cycle between two files of a layer, and server/
# including a kernels/ header — in a copy with both planted.
set -euo pipefail
repo=$1
check="$repo/scripts/check_includes.py"
python3 "$check" "$repo"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && tar -cf - core kernels index proto server clients) | tar -xf - -C "$tmp"
echo '#include "server_internal.h"' >> "$tmp/server/src/call.h"
echo '#include "quiver/kernels.h"' >> "$tmp/server/src/info.c"
if out=$(python3 "$check" "$tmp"); then
  echo "FAIL: the checker passed a tree with a planted cycle and an upward include"; echo "$out"
  exit 1
fi
grep -q 'include cycle: server/src/call.h -> server/src/server_internal.h -> server/src/call.h' <<<"$out" ||
  { echo "FAIL: the planted cycle is not reported"; echo "$out"; exit 1; }
grep -q 'server/src/info.c (server) includes kernels/include/quiver/kernels.h' <<<"$out" ||
  { echo "FAIL: server/ including a kernels/ header is not reported"; echo "$out"; exit 1; }
echo "ok: the tree is clean and both planted problems are reported"
