#!/usr/bin/env python3
"""Check that the vendored ONNX node test data is intact.

1. Always (stdlib only): every file listed in SHA256SUMS exists and matches, every
   manifest case has its directory, model.onnx and input_N/output_N .pb files whose
   counts match `inputs` / `outputs`.
2. If onnx + onnxruntime are importable: run every status="run" case in
   onnxruntime, feeding input_N.pb to input_names[N], and assert the outputs match
   output_N.pb (same shape and dtype, values within rtol=1e-5, atol=1e-6). Also
   checks the manifest's names/op/opset against the model itself.

Usage:  python3 tests/data/onnx-node/verify.py [--no-runtime]
Exit status: 0 all good, 1 a failure, 77 step 2 was requested but onnx/onnxruntime
is not installed (step 1 still ran and passed).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
RTOL, ATOL = 1e-5, 1e-6


def check_files(cases) -> list[str]:
    errors = []
    with open(os.path.join(HERE, "SHA256SUMS")) as fh:
        listed = set()
        for line in fh:
            digest, rel = line.rstrip("\n").split("  ", 1)
            listed.add(rel)
            path = os.path.join(HERE, rel)
            if not os.path.isfile(path):
                errors.append(f"missing file {rel}")
                continue
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    errors.append(f"checksum mismatch {rel}")
    for c in cases:
        d = os.path.join(HERE, c["name"], "test_data_set_0")
        want = {f"{c['name']}/model.onnx"}
        want |= {f"{c['name']}/test_data_set_0/input_{i}.pb" for i in range(c["inputs"])}
        want |= {f"{c['name']}/test_data_set_0/output_{i}.pb" for i in range(c["outputs"])}
        have = {f"{c['name']}/test_data_set_0/{f}" for f in os.listdir(d)} | {f"{c['name']}/model.onnx"}
        if want != have:
            errors.append(f"{c['name']}: files {sorted(have ^ want)} differ from manifest counts")
        if not want <= listed:
            errors.append(f"{c['name']}: files not in SHA256SUMS: {sorted(want - listed)}")
        if len(c["input_names"]) != c["inputs"] or len(c["output_names"]) != c["outputs"]:
            errors.append(f"{c['name']}: name lists disagree with counts")
        if c["status"] not in ("run", "excluded") or (c["status"] == "excluded") != ("reason" in c):
            errors.append(f"{c['name']}: bad status/reason")
    return errors


def run_case(c, onnx, ort, np, numpy_helper) -> None:
    d = os.path.join(HERE, c["name"])
    model = onnx.load(os.path.join(d, "model.onnx"))
    assert [i.name for i in model.graph.input] == c["input_names"], "input_names differ from model"
    assert [o.name for o in model.graph.output] == c["output_names"], "output_names differ from model"
    assert [n.op_type for n in model.graph.node] == [c["op"]], "op differs from model"
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    assert opset == [c["opset"]], f"opset {opset} != {c['opset']}"

    def load(kind, i):
        t = onnx.TensorProto()
        with open(os.path.join(d, "test_data_set_0", f"{kind}_{i}.pb"), "rb") as fh:
            t.ParseFromString(fh.read())
        return numpy_helper.to_array(t)

    feeds = {name: load("input", i) for i, name in enumerate(c["input_names"])}
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(c["output_names"], feeds)
    for i, (name, g) in enumerate(zip(c["output_names"], got)):
        want = load("output", i)
        assert g.shape == want.shape, f"{name}: shape {g.shape} != {want.shape}"
        assert g.dtype == want.dtype, f"{name}: dtype {g.dtype} != {want.dtype}"
        np.testing.assert_allclose(g, want, rtol=RTOL, atol=ATOL, err_msg=name)


def main() -> int:
    with open(os.path.join(HERE, "manifest.toml"), "rb") as fh:
        cases = tomllib.load(fh)["case"]
    errors = check_files(cases)
    for e in errors:
        print("FAIL", e)
    if errors:
        print(f"file check: {len(errors)} problem(s)")
        return 1
    print(f"file check: {len(cases)} cases, all files present and checksums match")
    if "--no-runtime" in sys.argv[1:]:
        return 0

    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError as e:
        print(f"runtime check skipped: {e} (pip install onnx onnxruntime)")
        return 77
    print(f"runtime check with onnx {onnx.__version__}, onnxruntime {ort.__version__}")

    passed = failed = skipped = 0
    for c in cases:
        if c["status"] != "run":
            skipped += 1
            continue
        try:
            run_case(c, onnx, ort, np, numpy_helper)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {c['name']}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
