#!/usr/bin/env bash
# The whole test suite, on a fresh machine that has only the Rust toolchain: installs what the
# tests need (onnxruntime and numpy from PyPI, NVRTC from PyPI, the aarch64 cross linker and
# qemu-user), then runs every crate's tests and doc tests, the aarch64 NEON kernel tests under
# qemu, the Python package's tests (scripts/test_python.sh: a fresh venv, the wheel built from
# source) and a smoke run of every fuzz target (nightly, cargo-fuzz installed if missing). Safe to
# rerun: what is installed already is kept. `.ci/run` is this script.
#
# Usage: bash scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== python test dependencies (onnxruntime runs resnetc's exports)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

echo "== NVRTC from PyPI (compiles the generated CUDA kernels; no GPU needed)"
eval "$(bash scripts/ci-nvrtc.sh)"
echo "RESNETC_NVRTC=${RESNETC_NVRTC:-unset}"

echo "== aarch64 NEON kernels under qemu-user"
bash scripts/ci-neon.sh

echo "== tests"
cargo test --workspace --locked "$@"

echo "== the Python package (crates/resnetc-py)"
bash scripts/test_python.sh

# Every fuzz target for 10 s from the committed corpus with a fixed seed (the same inputs each
# time: a smoke test, not a search; `bash scripts/fuzz.sh long HOURS` searches). Skip with
# RESNETC_SKIP_FUZZ=1.
if [[ ${RESNETC_SKIP_FUZZ:-0} != 1 ]]; then
    echo "== fuzz smoke (cargo-fuzz, AddressSanitizer)"
    FUZZ_SEED=1 bash scripts/fuzz.sh smoke 10
fi
