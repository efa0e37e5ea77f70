#!/usr/bin/env python3
"""Re-vendor the ONNX backend node test cases used by resnetc's peer test suite.

Copies the selected cases out of an installed onnx wheel (pinned: 1.22.0) into
this directory and rewrites manifest.toml. It is a maintenance tool, not part of
the test run; run it from a throwaway venv:

    python3 -m venv /tmp/onnxvenv
    /tmp/onnxvenv/bin/pip install onnx==1.22.0
    /tmp/onnxvenv/bin/python tests/data/onnx-node/vendor.py

Then check the copy with verify.py.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys

import onnx

PINNED = "1.22.0"
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")

SUPPORTED_OPS = {
    "Conv", "BatchNormalization", "Relu", "Add", "Gemm", "GlobalAveragePool",
    "Flatten", "Pad", "Slice", "Reshape",
}

CASES = [
    # Add
    "test_add", "test_add_bcast",
    "test_add_int8", "test_add_int16", "test_add_uint8", "test_add_uint16",
    "test_add_uint32", "test_add_uint64",
    # Conv
    "test_basic_conv_with_padding", "test_basic_conv_without_padding",
    "test_conv_with_autopad_same", "test_conv_with_strides_and_asymmetric_padding",
    "test_conv_with_strides_no_padding", "test_conv_with_strides_padding",
    # BatchNormalization (inference mode only; *_training_mode* deliberately not vendored)
    "test_batchnorm_example", "test_batchnorm_epsilon",
    # Relu (test_relu_expanded_ver18 not vendored: Constant/CastLike/Max)
    "test_relu",
    # Gemm
    "test_gemm_all_attributes", "test_gemm_alpha", "test_gemm_beta",
    "test_gemm_default_matrix_bias", "test_gemm_default_no_bias",
    "test_gemm_default_scalar_bias", "test_gemm_default_single_elem_vector_bias",
    "test_gemm_default_vector_bias", "test_gemm_default_zero_bias",
    "test_gemm_transposeA", "test_gemm_transposeB",
    # GlobalAveragePool
    "test_globalaveragepool", "test_globalaveragepool_precomputed",
    # Flatten
    "test_flatten_axis0", "test_flatten_axis1", "test_flatten_axis2",
    "test_flatten_axis3", "test_flatten_default_axis",
    "test_flatten_negative_axis1", "test_flatten_negative_axis2",
    "test_flatten_negative_axis3", "test_flatten_negative_axis4",
    # Pad
    "test_constant_pad", "test_constant_pad_axes", "test_constant_pad_negative_axes",
    "test_edge_pad", "test_reflect_pad", "test_wrap_pad",
    # Slice
    "test_slice", "test_slice_default_axes", "test_slice_default_steps",
    "test_slice_end_out_of_bounds", "test_slice_neg", "test_slice_neg_steps",
    "test_slice_negative_axes", "test_slice_start_out_of_bounds",
    # Reshape
    "test_reshape_allowzero_reordered", "test_reshape_extended_dims",
    "test_reshape_negative_dim", "test_reshape_negative_extended_dims",
    "test_reshape_one_dim", "test_reshape_reduced_dims",
    "test_reshape_reordered_all_dims", "test_reshape_reordered_last_dims",
    "test_reshape_zero_and_negative_dim", "test_reshape_zero_dim",
]

# Per-case remarks for whoever writes the Rust harness (TOML `notes`).
NOTES = {
    "test_add_bcast": "y has shape [5], broadcast against x [3,4,5]",
    "test_basic_conv_with_padding": "no bias input B; W is a graph input",
    "test_basic_conv_without_padding": "no bias input B; W is a graph input",
    "test_conv_with_autopad_same": "auto_pad=SAME_LOWER, strides 2, no explicit pads; no bias; W is a graph input",
    "test_conv_with_strides_and_asymmetric_padding": "pads [1,0,1,0] (H padded, W not), strides 2; no bias; W is a graph input",
    "test_conv_with_strides_no_padding": "strides 2, pads 0; no bias; W is a graph input",
    "test_conv_with_strides_padding": "strides 2, pads 1; no bias; W is a graph input",
    "test_batchnorm_example": "scale/bias/mean/var are graph inputs; default epsilon 1e-5",
    "test_batchnorm_epsilon": "scale/bias/mean/var are graph inputs; epsilon=0.01",
    "test_gemm_all_attributes": "transA=1 transB=1 alpha=0.25 beta=0.35; C [1,5] broadcast",
    "test_gemm_alpha": "alpha=0.5; C [1,4] broadcast",
    "test_gemm_beta": "beta=0.5; C [1,4] broadcast",
    "test_gemm_default_matrix_bias": "C [3,4] full matrix",
    "test_gemm_default_no_bias": "C omitted (2 inputs)",
    "test_gemm_default_scalar_bias": "C is a rank-0 scalar",
    "test_gemm_default_single_elem_vector_bias": "C has shape [1]",
    "test_gemm_default_vector_bias": "C [1,4] broadcast",
    "test_gemm_default_zero_bias": "C [1,4] all zeros",
    "test_gemm_transposeA": "transA=1",
    "test_gemm_transposeB": "transB=1 (the layout a torch Linear exports)",
    "test_globalaveragepool_precomputed": "1x1x3x3 of 1..9 -> 5.0",
    "test_flatten_axis0": "axis=0 -> [1, 120]",
    "test_flatten_default_axis": "axis attribute absent (default 1)",
    "test_flatten_negative_axis4": "axis=-4 -> [1, 120]",
    "test_constant_pad": "pads (int64 [8]) and constant_value (float32 scalar 1.2) are graph inputs; no axes",
    "test_constant_pad_axes": "pads [4], constant_value 1.2 and axes [1,3] are all graph inputs",
    "test_constant_pad_negative_axes": "pads [4], constant_value 1.2 and axes [-3,-1] (negative) are all graph inputs",
    "test_slice": "starts/ends/axes/steps all given as int64 graph inputs",
    "test_slice_default_axes": "axes and steps omitted (3 inputs)",
    "test_slice_default_steps": "steps omitted (4 inputs)",
    "test_slice_end_out_of_bounds": "ends=1000 > dim, must clamp",
    "test_slice_neg": "ends=-1 (negative end index)",
    "test_slice_neg_steps": "steps [-1,-3,-2] (negative steps), starts at/after dim end",
    "test_slice_negative_axes": "axes [0,-2,-1] (negative axes), steps omitted",
    "test_slice_start_out_of_bounds": "starts=1000 -> empty output [20,0,5] (zero-size tensor)",
    "test_reshape_allowzero_reordered": "allowzero=1, zero-size input [0,3,4] -> [3,4,0]; shape [3,4,0]",
    "test_reshape_negative_dim": "shape [2,-1,2]",
    "test_reshape_negative_extended_dims": "shape [-1,2,3,4]",
    "test_reshape_zero_and_negative_dim": "shape [2,0,1,-1] (0 copies input dim, allowzero=0)",
    "test_reshape_zero_dim": "shape [2,0,4,1] (0 copies input dim, allowzero=0)",
}

PAD_MODE_REASON = (
    "Pad mode={mode}: resnetc only implements/needs Pad mode=constant; "
    "also x/y are int32, not float32"
)


def dtype_name(vi) -> str:
    return onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)


def classify(name: str, model) -> tuple[str, str | None]:
    ops = [n.op_type for n in model.graph.node]
    outside = sorted(set(ops) - SUPPORTED_OPS)
    if outside:
        return "excluded", f"uses ops outside the supported list: {', '.join(outside)}"
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Pad":
        mode = attrs.get("mode", b"constant").decode()
        if mode != "constant":
            return "excluded", PAD_MODE_REASON.format(mode=mode)
    if node.op_type == "BatchNormalization" and attrs.get("training_mode", 0):
        return "excluded", "BatchNormalization training_mode=1 (inference only)"
    bad = []
    tagged = [(vi, True) for vi in model.graph.input] + [(vi, False) for vi in model.graph.output]
    for vi, is_input in tagged:
        dt = dtype_name(vi)
        if dt == "FLOAT":
            continue
        if dt == "INT64" and is_input and node.op_type in ("Pad", "Slice", "Reshape"):
            continue  # shape / index operand
        bad.append(f"{vi.name}:{dt.lower()}")
    if bad:
        return "excluded", "non-float32 tensor types (" + ", ".join(bad) + "); resnetc is float32-only"
    return "run", None


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_list(xs) -> str:
    return "[" + ", ".join(toml_str(x) for x in xs) + "]"


def main() -> int:
    if onnx.__version__ != PINNED:
        print(f"expected onnx {PINNED}, found {onnx.__version__}", file=sys.stderr)
        return 1
    lines = [
        "# ONNX backend node test cases vendored from the onnx "
        f"{PINNED} wheel (onnx/backend/test/data/node/).",
        "# Apache-2.0, see NOTICE and LICENSE in this directory. Generated by vendor.py.",
        "#",
        "# Each case directory holds model.onnx and test_data_set_0/{input_N,output_N}.pb.",
        "# input_N.pb maps onto input_names[N] and output_N.pb onto output_names[N]",
        "# (model.graph.input / model.graph.output order). No case has initializers:",
        "# every weight, bias, BN statistic, pads/value/axes, slice index and reshape",
        "# shape is a graph input fed from a .pb file.",
        "#",
        "# Deliberately not vendored: test_batchnorm_*_training_mode (training mode),",
        "# test_relu_expanded_ver18 (function body uses Constant/CastLike/Max),",
        "# test_convinteger_*, test_convtranspose_* (different ops).",
        "",
    ]
    n_run = n_ex = 0
    for name in CASES:
        src = os.path.join(SRC, name)
        dst = os.path.join(HERE, name)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        os.makedirs(os.path.join(dst, "test_data_set_0"))
        shutil.copy2(os.path.join(src, "model.onnx"), os.path.join(dst, "model.onnx"))
        sets = sorted(d for d in os.listdir(src) if d.startswith("test_data_set_"))
        assert sets == ["test_data_set_0"], (name, sets)
        for f in sorted(os.listdir(os.path.join(src, "test_data_set_0"))):
            assert f.endswith(".pb"), (name, f)
            shutil.copy2(os.path.join(src, "test_data_set_0", f), os.path.join(dst, "test_data_set_0", f))

        model = onnx.load(os.path.join(dst, "model.onnx"))
        assert not model.graph.initializer, name
        assert len(model.graph.node) == 1, name
        opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
        assert len(opset) == 1, (name, opset)
        ins = [i.name for i in model.graph.input]
        outs = [o.name for o in model.graph.output]
        n_in_pb = len([f for f in os.listdir(os.path.join(dst, "test_data_set_0")) if f.startswith("input_")])
        n_out_pb = len([f for f in os.listdir(os.path.join(dst, "test_data_set_0")) if f.startswith("output_")])
        assert n_in_pb == len(ins) and n_out_pb == len(outs), name
        status, reason = classify(name, model)
        n_run += status == "run"
        n_ex += status == "excluded"

        lines.append("[[case]]")
        lines.append(f"name = {toml_str(name)}")
        lines.append(f"op = {toml_str(model.graph.node[0].op_type)}")
        lines.append(f"opset = {opset[0]}")
        lines.append(f"inputs = {len(ins)}")
        lines.append(f"outputs = {len(outs)}")
        lines.append(f"input_names = {toml_list(ins)}")
        lines.append(f"input_dtypes = {toml_list(dtype_name(i).lower() for i in model.graph.input)}")
        lines.append(f"output_names = {toml_list(outs)}")
        lines.append(f"status = {toml_str(status)}")
        if reason:
            lines.append(f"reason = {toml_str(reason)}")
        if name in NOTES:
            lines.append(f"notes = {toml_str(NOTES[name])}")
        lines.append("")

    with open(os.path.join(HERE, "manifest.toml"), "w") as fh:
        fh.write("\n".join(lines))
    # Checksums of every vendored data file, checked by verify.py without needing onnx.
    sums = []
    for name in CASES:
        for root, _, files in sorted(os.walk(os.path.join(HERE, name))):
            for f in sorted(files):
                path = os.path.join(root, f)
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                sums.append(f"{digest}  {os.path.relpath(path, HERE)}")
    with open(os.path.join(HERE, "SHA256SUMS"), "w") as fh:
        fh.write("\n".join(sums) + "\n")
    print(f"vendored {len(CASES)} cases: {n_run} run, {n_ex} excluded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
