#!/usr/bin/env python3
"""resnetc's CPU backend against onnxruntime, OpenVINO and tract on the pretrained CIFAR ResNets.

Runs every (model, batch, threads) configuration `--repeats` times, alternating the engines within
each repeat so that machine noise hits all of them alike, takes each engine's median images/s, and
prints a table of ratios. Each engine runs in its own process (its own warm-up, then the median of
`--iters` timed runs), so its peak resident memory is measured too (reported at the largest batch).

    python3 scripts/bench_compare.py                      # resnet20, resnet56 × batch 1, 64 × threads 1, 2
    python3 scripts/bench_compare.py --models resnet56 --batches 64 --threads 2 --repeats 3
    python3 scripts/bench_compare.py --contended --batches 1 --threads 0,1,2   # one core kept busy

Threads `0` means each engine's default (resnetc: the cores it may use; onnxruntime: intra-op 0;
OpenVINO: its own choice). `--contended` keeps one busy process (a Python spin loop) pinned to the
last CPU during every measurement, as on a shared machine; the table then says so.

resnetc: `resnetc bench MODEL --batch N --threads T --iters I --json` when the CLI has the
subcommand, else the resnetc crate's `bench` example (same function, same JSON).
onnxruntime: the CPU provider, ORT_ENABLE_ALL, intra_op_num_threads = T (inter_op 1).
OpenVINO: the CPU plugin with INFERENCE_PRECISION_HINT=f32 (on AVX-512-BF16 CPUs it picks bf16
otherwise, and its logits move by ~3e-2), NUM_STREAMS=1, one synchronous infer request,
INFERENCE_NUM_THREADS=T; the model reshaped to the batch. `--no-openvino` skips it (and it is left
out when the `openvino` package is missing).
tract: resnetc-validate's `tract_bench` example (tract-onnx is already a dependency); it uses one
thread whatever T is. `--no-tract` skips it.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RESNETC_SHARED", ROOT.parent / "shared"))


def run_child_rss(cmd):
    """Runs cmd; returns its last JSON line and its peak resident memory in MiB (wait4's rusage)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{err}")
    # The JSON object is the rest of stdout from its first line that opens one (one line or pretty).
    lines = out.splitlines()
    first = next(i for i, l in enumerate(lines) if l.lstrip().startswith("{"))
    return json.loads("\n".join(lines[first:])), usage.ru_maxrss / 1024


def resnetc_cmd(args):
    cli = ROOT / "target/release/resnetc"
    if cli.exists() and subprocess.run([cli, "bench", "--help"], capture_output=True).returncode == 0:
        return [str(cli), "bench"]
    example = ROOT / "target/release/examples/bench"
    if not example.exists() or args.build:
        subprocess.run(["cargo", "build", "--release", "-p", "resnetc", "--example", "bench"], cwd=ROOT, check=True)
    return [str(example)]


def tract_cmd(args):
    if args.no_tract:
        return None
    example = ROOT / "target/release/examples/tract_bench"
    debug = ROOT / "target/debug/examples/tract_bench"  # tract itself is built at opt-level 2 there
    if not example.exists() and debug.exists() and not args.build:
        return [str(debug)]
    if not example.exists() or args.build:
        r = subprocess.run(["cargo", "build", "--release", "-p", "resnetc-validate", "--example", "tract_bench"], cwd=ROOT)
        if r.returncode != 0:
            print("tract_bench did not build; leaving tract out", file=sys.stderr)
            return None
    return [str(example)]


def ort_worker(model, batch, threads, iters):
    """Runs in a child process: onnxruntime's median over `iters` runs after a warm-up, as JSON."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    x = (np.arange(batch * 3 * 32 * 32) * 7919 % 255 / 255.0 - 0.5).astype(np.float32).reshape(batch, 3, 32, 32)
    feed = {s.get_inputs()[0].name: x}
    timed(lambda: s.run(None, feed), batch, threads, iters, ort.__version__)


def timed(run, batch, threads, iters, version):
    """Warm-up for 0.2 s, then the median of `iters` runs, printed as the JSON line the parent reads."""
    t0 = time.perf_counter()
    run()
    while time.perf_counter() - t0 < 0.2:
        run()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    m = statistics.median(times)
    print(json.dumps({"median_ms": m * 1e3, "images_per_s": batch / m, "batch": batch, "threads": threads, "version": version}))


def openvino_worker(model, batch, threads, iters):
    """Runs in a child process: OpenVINO's CPU plugin, forced to f32, one synchronous request."""
    import numpy as np
    import openvino as ov

    core = ov.Core()
    m = core.read_model(model)
    m.reshape([batch, 3, 32, 32])
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1"}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = str(threads)
    compiled = core.compile_model(m, "CPU", cfg)
    req = compiled.create_infer_request()
    x = (np.arange(batch * 3 * 32 * 32) * 7919 % 255 / 255.0 - 0.5).astype(np.float32).reshape(batch, 3, 32, 32)
    timed(lambda: req.infer({0: x}), batch, threads, iters, ov.__version__)


def busy_worker(cpu):
    """Spins forever on `cpu` (the contended mode's other process)."""
    os.sched_setaffinity(0, {cpu})
    while True:
        pass


def openvino_available():
    try:
        import openvino  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet20,resnet56")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no-tract", action="store_true")
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--contended", action="store_true", help="keep one busy process on the last CPU during every measurement")
    ap.add_argument("--build", action="store_true", help="rebuild the benchmark binaries first")
    ap.add_argument("--json-out", help="also write all measurements to this file")
    ap.add_argument("--ort-worker", nargs=4, metavar=("MODEL", "BATCH", "THREADS", "ITERS"), help=argparse.SUPPRESS)
    ap.add_argument("--openvino-worker", nargs=4, metavar=("MODEL", "BATCH", "THREADS", "ITERS"), help=argparse.SUPPRESS)
    ap.add_argument("--busy-worker", type=int, metavar="CPU", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ort_worker:
        m, b, t, i = args.ort_worker
        ort_worker(m, int(b), int(t), int(i))
        return
    if args.openvino_worker:
        m, b, t, i = args.openvino_worker
        openvino_worker(m, int(b), int(t), int(i))
        return
    if args.busy_worker is not None:
        busy_worker(args.busy_worker)
        return

    rc = resnetc_cmd(args)
    tr = tract_cmd(args)
    threads_arg = lambda t: ["--threads", str(t)] if t else []
    engines = {
        "resnetc": lambda m, b, t: rc + [m, "--batch", str(b), *threads_arg(t), "--iters", str(args.iters), "--json"],
        "onnxruntime": lambda m, b, t: [sys.executable, __file__, "--ort-worker", m, str(b), str(t), str(args.iters)],
    }
    if not args.no_openvino and openvino_available():
        engines["openvino"] = lambda m, b, t: [sys.executable, __file__, "--openvino-worker", m, str(b), str(t), str(args.iters)]
    if tr:
        engines["tract"] = lambda m, b, t: tr + [m, str(b), str(max(3, args.iters // 4))]

    busy = None
    if args.contended:
        cpu = max(os.sched_getaffinity(0))
        busy = subprocess.Popen([sys.executable, __file__, "--busy-worker", str(cpu)])
        time.sleep(0.5)
    try:
        results = measure(args, engines)
    finally:
        if busy:
            busy.kill()
    report(args, engines, results)


def measure(args, engines):
    results = []
    for name in args.models.split(","):
        model = str(SHARED / f"models/pretrained/{name}_cifar10_pretrained.onnx")
        for batch in map(int, args.batches.split(",")):
            for threads in map(int, args.threads.split(",")):
                runs = {e: [] for e in engines}
                rss = {e: 0.0 for e in engines}
                for _ in range(args.repeats):
                    for e, cmd in engines.items():
                        r, peak = run_child_rss(cmd(model, batch, threads))
                        runs[e].append(r["images_per_s"])
                        rss[e] = max(rss[e], peak)
                row = {"model": name, "batch": batch, "threads": threads}
                for e in engines:
                    row[e] = statistics.median(runs[e])
                    row[f"{e}_runs"] = runs[e]
                    row[f"{e}_rss_mib"] = rss[e]
                results.append(row)
                print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return results


def report(args, engines, results):
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    busy = "; one busy process on the last CPU (--contended)" if args.contended else ""
    print(f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} CPUs; medians of {args.repeats} alternating runs (each the median of {args.iters}){busy}; threads 0 = each engine's default")
    has_tract = "tract" in engines
    has_ov = "openvino" in engines
    head = "| model | batch | threads | resnetc img/s (ms) | onnxruntime img/s (ms) | resnetc / ort |"
    sep = "|---|---|---|---|---|---|"
    if has_ov:
        head += " OpenVINO img/s (ms) | resnetc / OpenVINO |"
        sep += "---|---|"
    if has_tract:
        head += " tract img/s (1 thread) | resnetc / tract |"
        sep += "---|---|"
    print(head)
    print(sep)
    for r in results:
        b = r["batch"]
        cell = lambda e: f"{r[e]:.0f} ({1e3 * b / r[e]:.2f})"
        line = f"| {r['model']} | {b} | {r['threads']} | {cell('resnetc')} | {cell('onnxruntime')} | {r['resnetc'] / r['onnxruntime']:.2f}x |"
        if has_ov:
            line += f" {cell('openvino')} | {r['resnetc'] / r['openvino']:.2f}x |"
        if has_tract:
            line += f" {cell('tract')} | {r['resnetc'] / r['tract']:.2f}x |"
        print(line)
    big = max(int(b) for b in args.batches.split(","))
    print(f"\nPeak resident memory at batch {big} (MiB, whole process):")
    for r in results:
        if r["batch"] == big:
            mem = ", ".join(f"{e} {r[f'{e}_rss_mib']:.0f}" for e in engines)
            print(f"  {r['model']}, {r['threads']} threads: {mem}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
