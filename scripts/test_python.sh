#!/usr/bin/env bash
# The Python package's tests (crates/resnetc-py), as CI runs them from scripts/test.sh: a fresh venv
# with the pinned maturin, pytest and numpy (crates/resnetc-py/requirements-test.txt) and what the
# KServe and Ray examples' tests need (requirements-examples.txt), the abi3
# wheel built from source by `pip install ./crates/resnetc-py` (Cargo's output in target/py, kept
# between runs, or RESNETC_PY_TARGET_DIR), then pytest. The shared data is RESNETC_SHARED, or
# ../shared beside the repository.
#
# Usage: bash scripts/test_python.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${TMPDIR:-/tmp}/resnetc-py-venv"
python3 -m venv --clear "$venv" || {
    echo "error: python3 -m venv failed (on Debian and Ubuntu the venv module is the python3-venv package)" >&2
    exit 1
}
py="$venv/bin/python"
# maturin's build hook runs the `maturin` executable it finds on PATH.
export PATH="$venv/bin:$PATH"
"$py" -m pip install --quiet --disable-pip-version-check -r crates/resnetc-py/requirements-test.txt \
    -r crates/resnetc-py/requirements-examples.txt

# --no-build-isolation: build with the pinned maturin just installed, not whatever an isolated
# build environment would fetch.
start=$SECONDS
CARGO_TARGET_DIR="${RESNETC_PY_TARGET_DIR:-$PWD/target/py}" "$py" -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation ./crates/resnetc-py
echo "built and installed the resnetc wheel in $((SECONDS - start)) s"

# RESNETC_PY_EXAMPLES=1: the examples' tests fail, not skip, when their packages are missing.
RESNETC_PY_EXAMPLES=1 RESNETC_SHARED="${RESNETC_SHARED:-$PWD/../shared}" "$py" -m pytest -q crates/resnetc-py/tests "$@"
