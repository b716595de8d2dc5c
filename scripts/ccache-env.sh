# Sourced by the scripts that build (test.sh, demo.sh, fuzz.sh): where ccache keeps the compiled
# objects of this project's builds (CMakeLists.txt compiles through ccache when it is installed;
# scripts/bootstrap.sh installs it). Outside the repository, beside the FAISS builds; a clone in
# another directory hits the same cache (CCACHE_BASEDIR, CCACHE_NOHASHDIR: debug info then names
# the first clone's paths). Never needed: without ccache, or with an empty cache, builds compile
# everything as before. QUIVER_CCACHE=OFF at configure time turns it off.
export CCACHE_DIR=${CCACHE_DIR:-${QUIVER_CACHE:-$HOME/.cache/quiver}/ccache}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-4G}
