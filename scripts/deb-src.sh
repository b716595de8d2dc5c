#!/usr/bin/env bash
# Derives a deb-src entry from the machine's own apt sources, so that `apt-get source faiss` works
# without naming any mirror host in the repo. Used by scripts/bootstrap.sh; tested against
# fixture apt directories by tests/ops/deb_src_test.sh.
#
#   scripts/deb-src.sh [--apt-dir DIR]     (default /etc/apt; QUIVER_APT_DIR also sets it)
#
# What it looks at, in order:
#   1. a file it wrote before (sources.list.d/quiver-deb-src.sources or .list): nothing to do;
#   2. an enabled deb-src entry already present in any apt source: nothing to do;
#   3. sources.list.d/debian.sources (Debian 12), else sources.list.d/ubuntu.sources (NVIDIA's
#      Ubuntu-based CUDA images): each deb822 stanza of Types `deb` is copied with Types `deb-src`
#      into sources.list.d/quiver-deb-src.sources;
#   4. a classic sources.list: each `deb ` line becomes a `deb-src ` line in
#      sources.list.d/quiver-deb-src.list.
# Prints one line: `present PATH`, `enabled PATH` or `wrote PATH`. Exit 1 with what to do when the
# machine has no apt source to derive from. It never runs apt-get: after `wrote`, the caller runs
# `apt-get update`.
set -euo pipefail

apt=${QUIVER_APT_DIR:-/etc/apt}
while [ $# -gt 0 ]; do
  case "$1" in
    --apt-dir) apt=${2:?--apt-dir needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "deb-src.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
d=$apt/sources.list.d
out822=$d/quiver-deb-src.sources
outlist=$d/quiver-deb-src.list

for f in "$out822" "$outlist"; do
  if [ -s "$f" ]; then echo "present $f"; exit 0; fi
done

# An enabled deb-src already: a classic line, or a deb822 stanza whose Types name deb-src.
srcs=()
[ -f "$apt/sources.list" ] && srcs+=("$apt/sources.list")
for f in "$d"/*.list "$d"/*.sources; do
  [ -f "$f" ] && srcs+=("$f")
done
for f in "${srcs[@]}"; do
  case "$f" in
    *.sources)
      if grep -Eiq '^Types:.*deb-src' "$f"; then echo "enabled $f"; exit 0; fi ;;
    *)
      if grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$f"; then echo "enabled $f"; exit 0; fi ;;
  esac
done

for f in "$d/debian.sources" "$d/ubuntu.sources"; do
  [ -f "$f" ] || continue
  # Paragraph mode: one record per stanza. A stanza whose Types line names deb gets Types deb-src.
  # (Written for POSIX awk: Debian's minimal systems have mawk.)
  awk 'BEGIN { RS = ""; ORS = "\n\n" }
       {
         n = split($0, line, "\n"); types = 0; out = ""
         for (i = 1; i <= n; i++) {
           if (tolower(substr(line[i], 1, 6)) == "types:") {
             if (line[i] ~ /[[:space:]]deb([[:space:]]|$)/) types = 1
             line[i] = "Types: deb-src"
           }
           out = out (i > 1 ? "\n" : "") line[i]
         }
         if (types) print out
       }' "$f" >"$out822.tmp"
  if [ -s "$out822.tmp" ]; then
    mv "$out822.tmp" "$out822"
    echo "wrote $out822"
    exit 0
  fi
  rm -f "$out822.tmp"
done

if [ -f "$apt/sources.list" ] && grep -Eq '^[[:space:]]*deb[[:space:]]' "$apt/sources.list"; then
  mkdir -p "$d"
  sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$apt/sources.list" >"$outlist.tmp"
  if [ -s "$outlist.tmp" ]; then
    mv "$outlist.tmp" "$outlist"
    echo "wrote $outlist"
    exit 0
  fi
  rm -f "$outlist.tmp"
fi

echo "deb-src.sh: no apt source to derive a deb-src entry from in $apt (looked for" \
  "sources.list.d/debian.sources, sources.list.d/ubuntu.sources and sources.list with a 'deb' entry)." \
  "Add a deb-src line for Debian 12 (bookworm) main to $apt/sources.list.d/ by hand, then rerun" \
  "scripts/bootstrap.sh (docs/dependencies.md)." >&2
exit 1
