#!/usr/bin/env bash
# Prepares, on a build machine, what scripts/gpu_check.sh needs on a GPU machine that can neither
# build nor fetch it: the device tool's machines have no network, their copy of the checkout leaves
# ../shared behind, and a Rust toolchain there is not assumed. Writes .device/ (ignored by git):
#   gpu_check.xz   the gpu_check example, release, stripped and compressed (about 5 MB)
#   shared/        the pretrained models, their logits and the CIFAR-10 images from ../shared
# gpu_check.sh finds both by itself. With the device tool: carry [".device"], command
#   GPU_CHECK_OUT=$OUT bash scripts/gpu_check.sh
# usage: scripts/device_prepare.sh        env: RESNETC_SHARED (default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."

shared="${RESNETC_SHARED:-../shared}"
cargo build --release --locked -p resnetc-cuda --example gpu_check
rm -rf .device
mkdir -p .device/shared/models/pretrained .device/shared/data/cifar10
strip -o .device/gpu_check target/release/examples/gpu_check
xz -T0 -9 .device/gpu_check
cp "$shared"/models/pretrained/*_cifar10_pretrained.onnx \
    "$shared"/models/pretrained/*_cifar10_pretrained.logits_first1000.npy .device/shared/models/pretrained/
cp "$shared"/data/cifar10/test_first1000.bin .device/shared/data/cifar10/

# The device tool sends tracked files plus what `carry` names, 64 MiB in all.
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
extra=$(du -sb .device | cut -f1)
total=$((tracked + extra))
echo "device_prepare: .device is $((extra / 1048576)) MiB; with the tracked files $((total / 1048576)) MiB of the 64 MiB a call may send"
if (( total > 64 * 1048576 )); then
    echo "device_prepare: too large for one call" >&2
    exit 1
fi
