#!/usr/bin/env bash
# No Docker engine runs on the CI machines, so the images are checked statically:
#   - every file the Dockerfile COPYs from the context, and every script it runs, exists
#     (scripts executable) and is not excluded by .dockerignore;
#   - its build steps are the scripts CI runs (.ci/run -> scripts/bootstrap.sh, the FAISS prefix
#     from `scripts/bootstrap.sh --print-prefix`, as scripts/test.sh does), for both targets;
#   - the runtime stages (cpu, the default, and gpu) run as a non-root user, keep /data on a
#     volume, expose the gRPC and metrics ports, and have a HEALTHCHECK with `quiver health`;
#   - every quiverd flag the ENTRYPOINTs and docker-compose.yml pass is one quiverd --help lists,
#     and compose builds a target the Dockerfile has.
#   check_dockerfile.sh REPO_ROOT QUIVERD_BINARY
set -euo pipefail
root=$1 quiverd=$2
df=$root/Dockerfile
fail=0
bad() { echo "check_dockerfile: $*" >&2; fail=1; }

[ -f "$df" ] || { echo "no Dockerfile" >&2; exit 1; }
# Join continuation lines so that each instruction is one line.
flat=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$df" | grep -v '^\s*#')

# COPY sources from the build context.
while read -r line; do
  set -- $line
  shift # COPY
  [[ "$1" == --from=* ]] && continue
  args=("$@")
  for ((i = 0; i < ${#args[@]} - 1; i++)); do
    src=${args[$i]}
    [[ "$src" == --* ]] && continue
    [ -e "$root/$src" ] || bad "COPY source '$src' does not exist"
  done
done < <(grep -E '^COPY ' <<<"$flat")

# Scripts the RUN steps call.
for s in $(grep -E '^RUN ' <<<"$flat" | grep -oE 'scripts/[A-Za-z0-9_.-]+\.sh' | sort -u); do
  [ -x "$root/$s" ] || bad "RUN calls $s, which is missing or not executable"
  if grep -qE '^scripts/?$|^scripts/\*' "$root/.dockerignore" 2>/dev/null; then
    bad ".dockerignore excludes scripts/"
  fi
done

# The build steps are CI's: bootstrap, then the prefix it prints.
grep -q 'scripts/bootstrap.sh' "$root/.ci/run" || bad ".ci/run no longer calls scripts/bootstrap.sh"
grep -q 'scripts/test.sh' "$root/.ci/run" || bad ".ci/run no longer calls scripts/test.sh"
grep -q 'bootstrap.sh --print-prefix' "$root/scripts/test.sh" ||
  bad "scripts/test.sh no longer takes the FAISS prefix from bootstrap.sh --print-prefix"
for target in build-cpu build-gpu; do
  stage=$(awk -v t="$target" '/^FROM /{on = ($NF == t)} on' <<<"$flat")
  [ -n "$stage" ] || { bad "no stage $target"; continue; }
  grep -q 'scripts/bootstrap.sh' <<<"$stage" || bad "$target does not run scripts/bootstrap.sh"
  grep -q 'QUIVER_FAISS_PREFIX="$(scripts/bootstrap.sh --print-prefix' <<<"$stage" ||
    bad "$target does not take the FAISS prefix from scripts/bootstrap.sh --print-prefix"
  grep -q 'cmake --build' <<<"$stage" || bad "$target does not build with CMake"
done
grep -q -- '--with-gpu' <<<"$(awk '/^FROM /{on = ($NF == "build-gpu")} on' <<<"$flat")" ||
  bad "build-gpu does not build FAISS with GPU (bootstrap.sh --with-gpu)"

# Runtime stages.
last=$(grep -E '^FROM ' <<<"$flat" | tail -1 | awk '{print $NF}')
[ "$last" = cpu ] || bad "the default (last) stage is '$last', not cpu"
grep -qE '^FROM debian:bookworm-slim AS cpu' <<<"$flat" || bad "cpu does not run on debian:bookworm-slim"
grep -qE '^FROM \$\{CUDA_RUNTIME\} AS gpu' <<<"$flat" || bad "gpu does not run on the CUDA runtime image"
grep -qE '^ARG CUDA_DEVEL=nvidia/cuda:13' <<<"$flat" || bad "the GPU build is not on NVIDIA's CUDA 13 devel image"
for target in cpu gpu; do
  stage=$(awk -v t="$target" '/^FROM /{on = ($NF == t)} on' <<<"$flat")
  user=$(grep -E '^USER ' <<<"$stage" | tail -1 | awk '{print $2}')
  [ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || bad "$target runs as root"
  grep -qE '^VOLUME .*/data' <<<"$stage" || bad "$target has no /data volume"
  grep -qE '^EXPOSE .*7070' <<<"$stage" || bad "$target does not expose 7070 (gRPC)"
  grep -qE '^EXPOSE .*9464' <<<"$stage" || bad "$target does not expose 9464 (metrics)"
  grep -qE '^HEALTHCHECK .*quiver.*health' <<<"$stage" || bad "$target has no HEALTHCHECK with quiver health"
  grep -qE '^ENTRYPOINT .*quiverd' <<<"$stage" || bad "$target does not start quiverd"
done

# quiverd flags used by the images and compose are real.
help=$("$quiverd" --help)
for flag in $( (grep -E '^ENTRYPOINT ' <<<"$flat"; grep -E 'command:' "$root/docker-compose.yml") |
               grep -oE '"--[a-z-]+"' | tr -d '"' | sort -u); do
  grep -q -- "  $flag " <<<"$help" || bad "quiverd has no option $flag (used by the image or compose)"
done
ctarget=$(awk '/target:/{print $2; exit}' "$root/docker-compose.yml")
grep -qE "^FROM .* AS $ctarget\$" <<<"$flat" || bad "docker-compose.yml builds target '$ctarget', which the Dockerfile lacks"
for f in $(grep -oE '\./[A-Za-z0-9_./-]+:/etc/prometheus' "$root/docker-compose.yml" | cut -d: -f1); do
  [ -e "$root/$f" ] || bad "docker-compose.yml mounts $f, which does not exist"
done

[ "$fail" = 0 ] && echo "check_dockerfile: Dockerfile, .dockerignore and docker-compose.yml agree with the repo and CI"
exit "$fail"
