#!/usr/bin/env python3
"""PyTorch's side of scripts/gpu_check.sh: times CIFAR ResNet-56 at batch 1 and 256 on the GPU in fp32
(TF32 off) -- eager (cuDNN), eager with cuDNN autotuning, eager with BatchNorm folded, torch.compile --
and prints each against resnetc's timings from the gpu_check example's JSON.

usage: gpu_check_torch.py --resnetc target/gpu_check/resnetc.json [--out FILE]
Exit status: 0 when resnetc's batch-256 throughput is at least PyTorch eager's, 3 when it is not,
2 when PyTorch or a GPU is missing.
"""

import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # reported by main()
    torch = None
    TORCH_ERROR = e

if torch is not None:
    class Shortcut(nn.Module):
        """Option A: subsample and zero-pad the channels (akamaster/pytorch_resnet_cifar10)."""

        def __init__(self, planes):
            super().__init__()
            self.pad = planes // 4

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)

    class BasicBlock(nn.Module):
        def __init__(self, in_planes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = Shortcut(planes) if stride != 1 or in_planes != planes else nn.Identity()

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self, n, classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            layers, in_planes = [], 16
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(n):
                    layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                    in_planes = planes
            self.layers = nn.Sequential(*layers)
            self.linear = nn.Linear(64, classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layers(out)
            out = F.avg_pool2d(out, out.size()[3]).flatten(1)
            return self.linear(out)

    def fold_bn(model):
        """Folds every BatchNorm into the convolution before it (what resnetc's optimizer does)."""
        def fold(conv, bn):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
            fused.weight.data = conv.weight.data * scale.reshape(-1, 1, 1, 1)
            fused.bias.data = bn.bias - bn.running_mean * scale
            return fused.to(conv.weight.device)

        with torch.no_grad():
            model.conv1, model.bn1 = fold(model.conv1, model.bn1), nn.Identity()
            for b in model.layers:
                b.conv1, b.bn1 = fold(b.conv1, b.bn1), nn.Identity()
                b.conv2, b.bn2 = fold(b.conv2, b.bn2), nn.Identity()
        return model

    def make(folded=False, device="cuda"):
        torch.manual_seed(0)
        m = ResNet(9).to(device).eval()
        with torch.no_grad():
            for mod in m.modules():  # non-trivial BatchNorm statistics, as after training
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.1, 0.1)
                    mod.running_var.uniform_(0.5, 1.5)
        return fold_bn(m) if folded else m



def self_test() -> int:
    """On the CPU: folding BatchNorm keeps the outputs (the GPU run needs no further checking)."""
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        a, b = make(device="cpu")(x), make(folded=True, device="cpu")(x)
    d = (a - b).abs().max().item()
    print(f"self-test: output {tuple(a.shape)}, max |eager - BN folded| = {d:.2e}")
    return 0 if a.shape == (4, 10) and d < 1e-4 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resnetc", help="JSON written by the gpu_check example")
    ap.add_argument("--self-test", action="store_true", help="check the model and BN folding on the CPU, then exit")
    ap.add_argument("--out", help="write all timings here as JSON")
    ap.add_argument("--skip-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--max-autotune", action="store_true", help="also time torch.compile mode=max-autotune-no-cudagraphs (minutes of autotuning)")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run of this script")
    args = ap.parse_args()
    if not args.self_test and not args.resnetc:
        ap.error("--resnetc is required")

    if torch is None:
        print(f"PyTorch is not installed ({TORCH_ERROR}); install a CUDA build of torch to compare", file=sys.stderr)
        return 2
    if args.self_test:
        return self_test()
    with open(args.resnetc) as f:
        ours = json.load(f)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch.cuda.is_available() is False: no GPU for PyTorch", file=sys.stderr)
        return 2

    # fp32 everywhere: no TF32 in cuDNN convolutions or matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    dev = args.device

    def bench(fn, batch, iters, warmup=20):
        x = torch.randn(batch, 3, 32, 32, device=dev)
        with torch.inference_mode():
            for _ in range(warmup):
                fn(x)
            if dev != "cuda":  # a dry run of this script on the CPU
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn(x)
                return (time.perf_counter() - t0) * 1e3 / iters
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn(x)
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / iters

    where = torch.cuda.get_device_name(0) if dev == "cuda" else dev
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}) on {where}")
    print(f"resnetc on {ours['device']['name']} ({ours['device']['arch']})")
    variants = {}
    torch.backends.cudnn.benchmark = False
    eager = make(device=dev)
    variants["eager (cuDNN)"] = lambda b, it: bench(eager, b, it)

    def eager_tuned(b, it):
        torch.backends.cudnn.benchmark = True
        try:
            return bench(eager, b, it)
        finally:
            torch.backends.cudnn.benchmark = False

    variants["eager, cudnn.benchmark"] = eager_tuned
    folded = make(folded=True, device=dev)
    variants["eager, BN folded"] = lambda b, it: bench(folded, b, it)
    if not args.skip_compile:
        modes = ["default", "reduce-overhead"] + (["max-autotune-no-cudagraphs"] if args.max_autotune else [])
        for mode in modes:
            def compiled_run(b, it, mode=mode):
                torch._dynamo.reset()
                c = torch.compile(make(device=dev), mode=mode)
                t0 = time.time()
                bench(c, b, 1, warmup=3)  # compile outside the timing
                print(f"  (torch.compile mode={mode}, batch {b}: compiled in {time.time() - t0:.0f} s)")
                return bench(c, b, it)
            variants[f"torch.compile {mode}"] = compiled_run

    rows, failures = [], []
    results = {}
    for entry in ours["resnet56"]:
        b, ms_ours, ms_dyn = entry["batch"], entry["ms_specialised"], entry["ms_dynamic"]
        iters = entry.get("iters", 100)
        for name, fn in variants.items():
            try:
                ms = fn(b, iters)
            except Exception as e:  # torch.compile needs triton and a compiler; report, go on
                print(f"  {name} at batch {b} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                failures.append(name)
                continue
            results.setdefault(str(b), {})[name] = ms
            rows.append((b, name, ms, ms_ours, ms_dyn))

    print("\n== ResNet-56, fp32, TF32 off: milliseconds per batch (lower is better); ratio = PyTorch / resnetc (> 1: resnetc faster)")
    print(f"{'batch':>5}  {'PyTorch':<42} {'PyTorch ms':>10} {'img/s':>9}  {'resnetc ms':>10} {'img/s':>9} {'ratio':>6}  {'dyn-batch ms':>12} {'ratio':>6}")
    for b, name, ms, mo, md in rows:
        print(f"{b:>5}  {name:<42} {ms:>10.3f} {b / ms * 1e3:>9.0f}  {mo:>10.3f} {b / mo * 1e3:>9.0f} {ms / mo:>6.2f}  {md:>12.3f} {ms / md:>6.2f}")

    verdict = 0
    b256 = next((e for e in ours["resnet56"] if e["batch"] == 256), None)
    eager256 = results.get("256", {}).get("eager (cuDNN)")
    if b256 and eager256:
        ratio = eager256 / b256["ms_specialised"]
        ok = ratio >= 1.0
        print(f"\nbatch 256 throughput vs PyTorch eager fp32: {ratio:.2f}x -> {'PASS' if ok else 'FAIL'} (needs >= 1)")
        verdict = 0 if ok else 3
    else:
        print("\nbatch 256 vs PyTorch eager: not measured")
        verdict = 3
    if not ours.get("all_correct", False):
        print("resnetc was WRONG on at least one model (see above)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "ms_per_batch": results, "resnetc": ours["resnet56"]}, f, indent=1)
    return verdict


if __name__ == "__main__":
    sys.exit(main())
