#!/usr/bin/env bash
# The Python client's pytest suite (clients/python/tests) against the real quiverd.
#
#   scripts/test-python.sh                 all of it
#   scripts/test-python.sh -k recall -x    extra arguments go to pytest
#
# Expects build/bin/quiverd and build/bin/quiver to be built already (scripts/test.sh builds them
# and then calls this); QUIVER_BIN_DIR points elsewhere. Creates (or reuses) the virtual
# environment build/py-venv with `python3 -m venv` (PYTHON overrides the interpreter) and installs
# ./clients/python[test] into it; once installed, reruns need no network.
cd "$(dirname "$0")/.."
. scripts/errtrap.sh
export QUIVER_BIN_DIR=${QUIVER_BIN_DIR:-$PWD/build/bin}
venv=build/py-venv

if [ ! -x "$QUIVER_BIN_DIR/quiverd" ]; then
  echo "test-python.sh: $QUIVER_BIN_DIR/quiverd is missing; build it first" \
    "(cmake --build build --target quiverd quiver, or scripts/test.sh)" >&2
  exit 1
fi

if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
qv_step "installing the Python client and its test dependencies from PyPI into $venv" \
  "pip must reach PyPI (grpcio, protobuf, numpy, pytest, grpcio-tools, kubernetes-validate, PyYAML); behind a proxy with its own CA, point PIP_CERT at a bundle that holds it"
pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)
# Build the package with the venv's own setuptools (no isolated build environment to download
# every run); requirements already satisfied are not looked up again.
"$venv/bin/python" -c 'import setuptools, sys; sys.exit(tuple(map(int, setuptools.__version__.split(".")[:2])) < (70, 1))' \
  2>/dev/null || "${pip[@]}" install 'setuptools>=70.1'
rm -rf clients/python/build  # setuptools' in-tree staging; stale files there end up in the wheel
"${pip[@]}" install --no-build-isolation "./clients/python[test]"

qv_step "running the Python client's tests (pytest)"
exec "$venv/bin/python" -m pytest -ra clients/python/tests "$@"
