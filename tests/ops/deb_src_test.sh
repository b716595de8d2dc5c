#!/usr/bin/env bash
# The deb-src derivation that scripts/bootstrap.sh needs before `apt-get source faiss`, run against
# fixture apt directories (scripts/deb-src.sh --apt-dir): Debian 12's deb822 debian.sources, the
# Ubuntu CUDA images' ubuntu.sources, a classic sources.list, a derived file already present, a
# deb-src already enabled, and no source at all. Each case checks the exact file written (or that
# none was) and the exit status; where apt-get is present, apt itself must parse the result and
# list deb-src targets for it.
#   deb_src_test.sh REPO_ROOT
set -uo pipefail
root=${1:?usage: deb_src_test.sh REPO_ROOT}
derive=$root/scripts/deb-src.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qv-deb-src.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL [$case]: $*" >&2; fail=$((fail + 1)); }

fixture() { # $1 = case name: a fresh apt dir with an empty sources.list.d
  case=$1
  apt=$tmp/$1
  mkdir -p "$apt/sources.list.d"
}
run() { # runs the derivation on $apt; sets $said and $rc
  said=$("$derive" --apt-dir "$apt" 2>"$apt.err")
  rc=$?
}
expect_file() { # $1 = path, $2 = exact content
  if [ ! -f "$1" ]; then bad "expected $1 to be written"; return; fi
  if [ "$(cat "$1")" != "$2" ]; then
    bad "unexpected content of $1:"; diff <(printf '%s\n' "$2") "$1" >&2
  else ok; fi
}
expect_no_derived() {
  local f
  for f in "$apt/sources.list.d/quiver-deb-src.sources" "$apt/sources.list.d/quiver-deb-src.list"; do
    if [ -e "$f" ]; then bad "did not expect $f"; return; fi
  done
  ok
}
expect_rc_said() { # $1 = exit status, $2 = first word of the line printed
  if [ "$rc" != "$1" ]; then bad "exit $rc, expected $1 (stderr: $(cat "$apt.err"))"; else ok; fi
  if [ -n "$2" ] && [ "${said%% *}" != "$2" ]; then bad "printed '$said', expected '$2 ...'"; else ok; fi
}
# apt must accept the derived entries and list them as deb-src targets (skipped without apt-get).
expect_apt_parses() { # $1 = how many deb-src (suite, site) pairs the sources name
  command -v apt-get >/dev/null || return 0
  local n
  local list=$apt/sources.list
  [ -f "$list" ] || list=/dev/null
  n=$(apt-get --no-release-info -o Dir::Etc::sourcelist="$list" \
        -o Dir::Etc::sourceparts="$apt/sources.list.d" -o Dir::State::Lists="$tmp/lists" \
        indextargets --format '$(TARGET_OF) $(RELEASE) $(SITE)' 'Created-By: Sources' \
        2>"$apt.apt-err" | sort -u | grep -c '^deb-src ')
  if [ "$n" != "$1" ]; then
    bad "apt-get indextargets lists $n deb-src suites, expected $1: $(cat "$apt.apt-err")"
  else ok; fi
}

DEBIAN='Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# a comment inside a stanza
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
DEBIAN_SRC='Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
# a comment inside a stanza
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'

# 1. Debian 12: only sources.list.d/debian.sources (no sources.list, no ubuntu.sources). The old
#    bootstrap's `ls debian.sources ubuntu.sources | head -1` under pipefail ended here, silently.
fixture debian-only
printf '%s\n' "$DEBIAN" >"$apt/sources.list.d/debian.sources"
run
expect_rc_said 0 wrote
expect_file "$apt/sources.list.d/quiver-deb-src.sources" "$DEBIAN_SRC"
expect_apt_parses 3
# ... and a second run leaves it as it is.
before=$(cat "$apt/sources.list.d/quiver-deb-src.sources")
run
expect_rc_said 0 present
expect_file "$apt/sources.list.d/quiver-deb-src.sources" "$before"

# 2. NVIDIA's Ubuntu CUDA images: only ubuntu.sources, lower-case keys, one stanza.
fixture ubuntu-only
printf 'types: deb\nURIs: http://mirror.example/ubuntu\nSuites: noble noble-updates\nComponents: main universe\n' \
  >"$apt/sources.list.d/ubuntu.sources"
run
expect_rc_said 0 wrote
expect_file "$apt/sources.list.d/quiver-deb-src.sources" 'Types: deb-src
URIs: http://mirror.example/ubuntu
Suites: noble noble-updates
Components: main universe'
expect_apt_parses 2

# 3. Both: debian.sources wins; other vendors' deb822 files are left alone.
fixture both
printf '%s\n' "$DEBIAN" >"$apt/sources.list.d/debian.sources"
printf 'Types: deb\nURIs: http://mirror.example/ubuntu\nSuites: noble\nComponents: main\n' \
  >"$apt/sources.list.d/ubuntu.sources"
printf 'Types: deb\nURIs: http://vendor.example/repo\nSuites: stable\nComponents: main\n' \
  >"$apt/sources.list.d/vendor.sources"
run
expect_rc_said 0 wrote
expect_file "$apt/sources.list.d/quiver-deb-src.sources" "$DEBIAN_SRC"

# 4. A classic sources.list: each deb line (options too) becomes a deb-src line; comments and a
#    commented-out deb-src are not copied.
fixture classic
printf '%s\n' '# the main archive' 'deb http://mirror.example/debian bookworm main' \
  '#deb-src http://mirror.example/debian bookworm main' \
  'deb [arch=amd64] http://mirror.example/debian-security bookworm-security main' '' \
  >"$apt/sources.list"
run
expect_rc_said 0 wrote
expect_file "$apt/sources.list.d/quiver-deb-src.list" 'deb-src http://mirror.example/debian bookworm main
deb-src [arch=amd64] http://mirror.example/debian-security bookworm-security main'
expect_apt_parses 2
if [ -e "$apt/sources.list.d/quiver-deb-src.sources" ]; then bad "wrote a deb822 file too"; else ok; fi

# 5. A derived file already present (from an earlier run): nothing is written or changed.
fixture present
printf '%s\n' "$DEBIAN" >"$apt/sources.list.d/debian.sources"
printf 'deb-src http://mirror.example/debian bookworm main\n' >"$apt/sources.list.d/quiver-deb-src.list"
run
expect_rc_said 0 present
expect_file "$apt/sources.list.d/quiver-deb-src.list" 'deb-src http://mirror.example/debian bookworm main'
if [ -e "$apt/sources.list.d/quiver-deb-src.sources" ]; then bad "wrote a second file"; else ok; fi

# 6. deb-src already enabled by the machine (classic line, or deb822 Types naming both).
fixture enabled-classic
printf 'deb http://mirror.example/debian bookworm main\ndeb-src http://mirror.example/debian bookworm main\n' \
  >"$apt/sources.list"
run
expect_rc_said 0 enabled
expect_no_derived
fixture enabled-deb822
printf 'Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n' \
  >"$apt/sources.list.d/debian.sources"
run
expect_rc_said 0 enabled
expect_no_derived

# 7. No apt source at all, or one with nothing to derive from: a clear error, nothing written.
fixture none
run
expect_rc_said 1 ""
if grep -q 'no apt source' "$apt.err" && grep -q 'deb-src' "$apt.err"; then ok
else bad "the error does not say what is missing and what to do: $(cat "$apt.err")"; fi
expect_no_derived
fixture comments-only
printf '# nothing here\n' >"$apt/sources.list"
run
expect_rc_said 1 ""
expect_no_derived

# 8. A missing apt directory is refused the same way (no stray directories left behind).
case=missing-dir
apt=$tmp/does-not-exist
run
expect_rc_said 1 ""
if [ -e "$apt" ]; then bad "created $apt"; else ok; fi

echo "deb-src derivation: $pass passed, $fail failed"
[ "$fail" = 0 ]
