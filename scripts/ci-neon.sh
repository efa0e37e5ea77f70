#!/usr/bin/env bash
# Builds resnetc-cpu for aarch64 and runs its unit tests and kernel differential tests (portable and
# NEON kernels against the reference executor) under qemu-user. Installs what it needs; safe to rerun.
# Usage (from anywhere): bash scripts/ci-neon.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# The whole-model tests (tests/cpu_models.rs in the root crate) are left to the native run: under
# emulation they take many minutes. resnetc-cpu has no dev-dependency on the root crate, so this
# build leaves out tract-onnx and the importer.
cargo test -p resnetc-cpu --target aarch64-unknown-linux-gnu --lib --test kernels
