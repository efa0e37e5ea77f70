"""Runs ONNX files in onnxruntime and compares them with expected outputs.

Usage: ort_compare.py MODEL.onnx=INPUT.npy=EXPECTED.npy ...
Exits non-zero if onnxruntime cannot load a model or an output is off by more than
max(1e-4, 2e-5 * max|expected|), or if a top-1 class differs.
"""
import sys

import numpy as np
import onnxruntime as ort


def main(specs):
    failed = 0
    for spec in specs:
        model, x, y = spec.split("=")
        x = np.load(x)
        y = np.load(y)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        tol = max(1e-4, 2e-5 * float(np.abs(y).max()))
        diff = float(np.abs(got - y).max())
        same_top1 = bool((got.argmax(1) == y.argmax(1)).all())
        ok = diff <= tol and same_top1
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {model}: max|diff| {diff:.2e} (tol {tol:.2e}), top-1 {'same' if same_top1 else 'DIFFERS'}")
    print(f"onnxruntime: {len(specs) - failed} models agree, {failed} disagree")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
