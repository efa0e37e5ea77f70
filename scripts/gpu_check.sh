#!/usr/bin/env bash
# GPU check of resnetc's CUDA backend, for a machine with an NVIDIA GPU and its driver:
#   1. every fixture and pretrained model on the GPU against PyTorch's saved outputs and the CPU
#      reference executor (max |difference| <= 1e-3; the kernels are fp32, no TF32),
#   2. ResNet-56 at batch 1 and 256: resnetc against PyTorch eager (cuDNN, fp32, TF32 off) and
#      torch.compile on the same GPU, with ratios.
#
# usage: scripts/gpu_check.sh [--shared DIR] [--tol 1e-3] [--compile-only]   (arguments go to the Rust
#        check; --compile-only generates and compiles every program and needs no GPU)
# env:   RESNETC_NVRTC     libnvrtc.so to use (else the library path, CUDA_HOME, the pip wheel)
#        GPU_CHECK_BIN     a prebuilt target/release/examples/gpu_check (skips cargo); without it,
#                          .device/gpu_check.xz from scripts/device_prepare.sh, else cargo builds it
#        GPU_CHECK_OUT     where the JSON results go (default target/gpu_check)
#        TORCH_ARGS        extra arguments for scripts/gpu_check_torch.py (e.g. --max-autotune)
# needs: cargo (unless a prebuilt binary), python3 with a CUDA build of torch for step 2, ../shared
#        (or .device/shared from scripts/device_prepare.sh, used when --shared is not given).
# exit:  0 all correct and batch-256 throughput >= PyTorch eager; 1 a model is wrong on the GPU;
#        2 no GPU, driver or NVRTC; 3 correct but slower than PyTorch eager at batch 256.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${GPU_CHECK_OUT:-target/gpu_check}"
mkdir -p "$out"

echo "== GPU"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
else
    echo "nvidia-smi not found; the check below reports whether the driver can be used"
fi

echo "== NVRTC"
if [[ -z "${RESNETC_NVRTC:-}" ]]; then
    # The library looks on the library path, in CUDA_HOME and for the pip wheel by itself; install
    # the wheel only when none of them has it (needs network access).
    if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so' \
        && ! [[ -e "${CUDA_HOME:-/usr/local/cuda}/lib64/libnvrtc.so" ]] \
        && ! python3 -c 'import importlib.metadata as m; m.files("nvidia-cuda-nvrtc") or m.files("nvidia-cuda-nvrtc-cu12")' 2>/dev/null; then
        eval "$(bash scripts/ci-nvrtc.sh)" || echo "could not install NVRTC from PyPI; set RESNETC_NVRTC=/path/to/libnvrtc.so"
    fi
fi
echo "RESNETC_NVRTC=${RESNETC_NVRTC:-unset: resnetc searches the library path, CUDA_HOME and the pip wheel}"

echo "== build"
args=(--repo "$PWD")
if [[ -d .device/shared && " $* " != *" --shared "* ]]; then
    args+=(--shared .device/shared)
fi
if [[ -n "${GPU_CHECK_BIN:-}" ]]; then
    bin="$GPU_CHECK_BIN"
    echo "using $bin"
elif [[ -f .device/gpu_check.xz ]]; then
    bin="$out/gpu_check"
    python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' .device/gpu_check.xz "$bin"
    chmod +x "$bin"
    echo "using .device/gpu_check.xz (built by scripts/device_prepare.sh)"
else
    cargo build --release -p resnetc-cuda --example gpu_check
    bin=target/release/examples/gpu_check
fi

echo "== resnetc on the GPU"
status=0
"$bin" "${args[@]}" --json "$out/resnetc.json" "$@" || status=$?
if [[ " $* " == *" --compile-only "* ]]; then
    echo "gpu_check: compile-only run, status $status"
    exit "$status"
fi
if [[ $status -eq 2 || ! -f "$out/resnetc.json" ]]; then
    echo "gpu_check: the GPU check could not run (status $status)"
    exit 2
fi

echo "== PyTorch on the same GPU"
torch_status=0
# shellcheck disable=SC2086
python3 scripts/gpu_check_torch.py --resnetc "$out/resnetc.json" --out "$out/torch.json" ${TORCH_ARGS:-} || torch_status=$?

echo "== summary"
if [[ $status -ne 0 ]]; then
    echo "FAIL: at least one model is wrong on the GPU (see the table above)"
    exit 1
fi
case $torch_status in
    0) echo "PASS: every model correct on the GPU; batch-256 throughput >= PyTorch eager" ;;
    3) echo "correct on the GPU, but slower than PyTorch eager at batch 256"; exit 3 ;;
    *) echo "correct on the GPU; the PyTorch comparison did not run (status $torch_status)"; exit 2 ;;
esac
echo "results: $out/resnetc.json, $out/torch.json"
