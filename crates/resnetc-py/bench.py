#!/usr/bin/env python3
"""resnetc's Python package against `resnetc bench` and onnxruntime's Python session: the time of
one call, `model(x)` against the CLI's median run and `session.run(None, {"input": x})`, at batch 1
and 64 on a pretrained model. Not a test: a figure to read (what the binding adds to a call, and the
GIL-free, planned-once path of `Model.run` to see in a profile).

    python3 crates/resnetc-py/bench.py                        # resnet20, threads = the cores
    python3 crates/resnetc-py/bench.py --model resnet56 --threads 1 --repeats 5

Both engines take the same input (a float32 NCHW numpy array of CIFAR-shaped noise) and use the
same thread count (onnxruntime: intra_op_num_threads, ORT_ENABLE_ALL, inter_op 1). Each repeat times
`--iters` calls of each engine in turn, after a warm-up, so machine noise hits both alike; the
table gives each engine's median over the repeats of the per-call median. `resnetc bench` (the
release binary: `--resnetc`, else target/release/resnetc, else `resnetc` on PATH) runs in the same
loop with the same iterations, threads and batch; "py/bench" is the Python call's time over the
CLI's (1.00: no overhead), "ort/py" onnxruntime's time over the Python call's (above 1: resnetc
faster).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import resnetc

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RESNETC_SHARED", ROOT.parent / "shared"))


def per_call(fn, iters):
    """The median time of one call of fn, in seconds."""
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_bench(binary, path, batch, threads, iters):
    """`resnetc bench`'s median time of one run, in seconds."""
    out = subprocess.run(
        [binary, "bench", str(path), "--batch", str(batch), "--threads", str(threads), "--iters", str(iters),
         "--warmup", str(max(5, iters // 5)), "--json", "-q"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["median_ms"] / 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20", help="resnet20, resnet32, resnet44 or resnet56 (pretrained, from the shared data)")
    ap.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for both engines")
    ap.add_argument("--iters", type=int, default=50, help="timed calls per engine per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resnetc", help="the resnetc binary for `resnetc bench` (default: target/release/resnetc, else PATH)")
    args = ap.parse_args()
    binary = args.resnetc or (str(ROOT / "target" / "release" / "resnetc")
                              if (ROOT / "target" / "release" / "resnetc").exists() else shutil.which("resnetc"))
    if binary is None:
        ap.error("no resnetc binary: build it (cargo build --release) or pass --resnetc")

    path = SHARED / "models" / "pretrained" / f"{args.model}_cifar10_pretrained.onnx"
    model = resnetc.load(path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    print(f"{args.model}, {args.threads} threads, resnetc {resnetc.__version__}, onnxruntime {ort.__version__}")
    print(f"{'batch':>5}  {'py ms':>8}  {'img/s':>8}  {'bench ms':>8}  {'py/bench':>8}  {'ort ms':>8}  {'img/s':>8}  "
          f"{'ort/py':>7}  max |Δ|")
    rng = np.random.default_rng(0)
    for batch in (int(b) for b in args.batches.split(",")):
        x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
        ours = lambda: model(x, threads=args.threads)
        theirs = lambda: session.run(None, {name: x})
        diff = float(np.abs(ours() - theirs()[0]).max())
        warmup = max(5, args.iters // 5)
        per_call(ours, warmup)
        per_call(theirs, warmup)
        t_ours, t_cli, t_theirs = [], [], []
        for _ in range(args.repeats):
            t_cli.append(cli_bench(binary, path, batch, args.threads, args.iters))
            t_ours.append(per_call(ours, args.iters))
            t_theirs.append(per_call(theirs, args.iters))
        a, c, b = (statistics.median(t) for t in (t_ours, t_cli, t_theirs))
        print(f"{batch:>5}  {a * 1e3:>8.3f}  {batch / a:>8.0f}  {c * 1e3:>8.3f}  {a / c:>8.3f}  {b * 1e3:>8.3f}  "
              f"{batch / b:>8.0f}  {b / a:>6.2f}×  {diff:.1e}")


if __name__ == "__main__":
    main()
