"""The resnetc Python package against PyTorch's outputs, the shared pretrained models and the
library's own contract (errors by kind, messages, threads, artifacts)."""

import threading
import time

import numpy as np
import pytest

import resnetc
from conftest import fixture, fixture_names, tolerance

PRETRAINED = ["resnet20", "resnet32", "resnet44", "resnet56"]


def pretrained(shared, name):
    return shared / "models" / "pretrained" / f"{name}_cifar10_pretrained.onnx"


@pytest.fixture(scope="module")
def r20(shared):
    return resnetc.load(pretrained(shared, "resnet20"))


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_matches_pytorch(name):
    path, x, expected = fixture(name)
    y = resnetc.load(path)(x)
    assert y.dtype == np.float32
    assert y.shape == expected.shape
    err = float(np.abs(y - expected).max())
    assert err <= tolerance(expected), f"{name}: max abs error {err:.3e}"


def test_there_are_fixtures():
    # The parametrized test above must not pass by having nothing to check.
    assert len(fixture_names()) >= 20


@pytest.mark.parametrize("name", PRETRAINED)
def test_pretrained_gives_pytorchs_predictions(shared, cifar, name):
    images, _ = cifar
    logits = np.load(shared / "models" / "pretrained" / f"{name}_cifar10_pretrained.logits_first1000.npy")
    model = resnetc.load(pretrained(shared, name))
    y = np.concatenate([model(images[i : i + 250]) for i in range(0, 1000, 250)])
    assert y.shape == (1000, 10)
    mismatches = np.flatnonzero(y.argmax(1) != logits.argmax(1))
    assert mismatches.size == 0, f"{name}: images {mismatches[:10]} differ from PyTorch"


def test_nhwc_input_is_refused_with_the_librarys_message(r20, cifar):
    images, _ = cifar
    nhwc = np.ascontiguousarray(images[:4].transpose(0, 2, 3, 1))
    with pytest.raises(resnetc.InvalidInput, match="NHWC") as e:
        r20(nhwc)
    assert isinstance(e.value, ValueError)
    assert isinstance(e.value, resnetc.Error)
    assert "x.transpose(0, 3, 1, 2)" in str(e.value)


def test_other_dtypes_are_refused_not_converted(r20, cifar):
    images, _ = cifar
    with pytest.raises(resnetc.InvalidInput, match=r"astype\(np.float32\)"):
        r20(images[:2].astype(np.float64))
    with pytest.raises(resnetc.InvalidInput, match=r"input 'input' must be f32 .* float16 \[2,3,32,32\]"):
        r20(images[:2].astype(np.float16))
    with pytest.raises(resnetc.InvalidInput):
        r20((images[:2] * 255).astype(np.uint8))


def test_non_contiguous_and_array_like_inputs(r20, cifar):
    images, _ = cifar
    x = images[:8]
    want = r20(x)
    # A channels-last buffer seen as NCHW (what torch's channels_last memory format gives).
    strided = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(r20(strided), want)
    np.testing.assert_array_equal(r20(images[:16:2]), r20(np.ascontiguousarray(images[:16:2])))

    # Misaligned: float32 elements at an odd byte offset of a buffer.
    misaligned = np.zeros(x.nbytes + 1, np.uint8)[1:].view(np.float32).reshape(x.shape)
    misaligned[...] = x
    assert not misaligned.flags.aligned
    np.testing.assert_array_equal(r20(misaligned), want)
    np.testing.assert_array_equal(r20(x[::-1]), r20(np.ascontiguousarray(x[::-1])))  # negative strides

    class TensorLike:  # what a CPU torch tensor offers numpy
        def __array__(self, dtype=None, copy=None):
            return x

    np.testing.assert_array_equal(r20(TensorLike()), want)


def test_nonfinite_input_is_refused(r20, cifar):
    x = cifar[0][:2].copy()
    x[1, 2, 3, 4] = np.nan
    with pytest.raises(resnetc.InvalidInput, match="NaN"):
        r20(x)


def test_malformed_model_raises_invalid_model(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(13).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(resnetc.InvalidModel) as e:
        resnetc.load(path)
    assert "random.onnx" in str(e.value)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(resnetc.ResnetcEnvironmentError) as e:
        resnetc.load(tmp_path / "absent.onnx")
    assert isinstance(e.value, OSError)
    assert "absent.onnx" in str(e.value)


def test_bad_option_values_are_invalid_input(r20, tmp_path):
    with pytest.raises(resnetc.InvalidInput, match="unknown target"):
        r20.compile(tmp_path / "m.rnc", target="tpu")
    with pytest.raises(resnetc.InvalidInput, match="unknown device"):
        r20(np.zeros((1, 3, 32, 32), np.float32), device="gpu")


def test_validate_passes_on_a_fixture():
    path, x, expected = fixture("r20_b_ts17_dynamic")
    report = resnetc.validate(path, x, expected)
    assert report.passed, str(report)
    assert report.first_divergence is None
    against = {row["against"] for row in report.rows}
    assert {"expected", "reference", "tract", "cpu"} <= against
    assert all(row["passed"] for row in report.rows)
    assert str(report).rstrip().splitlines()[-1].startswith("PASSED")
    d = report.to_dict()
    assert d["schema_version"] == 1 and d["passed"] is True


def test_validate_fails_on_wrong_expected_outputs_and_names_the_node():
    path, x, expected = fixture("r20_b_ts17_dynamic")
    report = resnetc.validate(path, x, expected + 1, against="reference")
    assert not report.passed
    rows = {row["against"]: row for row in report.rows}
    assert not rows["expected"]["passed"]
    assert rows["reference"]["passed"]  # resnetc agrees with itself; the expected values are off
    div = report.first_divergence
    assert div is not None and div["node"], report.to_dict()
    assert div["op"] == "Gemm"  # the node that produces the logits
    assert div["node"] in str(report)
    assert str(report).rstrip().splitlines()[-1].startswith("FAILED")


def test_validate_refuses_float64_expected():
    path, x, expected = fixture("r20_b_ts17_dynamic")
    with pytest.raises(resnetc.InvalidInput, match="expected must be float32"):
        resnetc.validate(path, x, expected.astype(np.float64))


def test_compiled_artifact_runs_with_the_same_outputs(tmp_path, shared, cifar):
    images, _ = cifar
    model = resnetc.load(pretrained(shared, "resnet20"))
    rnc = tmp_path / "r20.rnc"
    wrote = model.compile(rnc, target="cpu")
    assert wrote["schema_version"] == 1
    assert wrote["bytes"] == rnc.stat().st_size > 0
    compiled = resnetc.load(rnc)
    info = compiled.inspect()
    assert info["artifact"]["target"] == "cpu"
    assert info["artifact"]["cpu_plan_bytes"] > 0
    np.testing.assert_array_equal(compiled(images[:64]), model(images[:64]))


def test_two_threads_on_one_model(r20, cifar):
    images, _ = cifar
    batches = [images[i : i + 10] for i in range(0, 200, 10)]
    want = [r20(b) for b in batches]
    barrier = threading.Barrier(2)
    failures = []

    def work(order, threads):
        barrier.wait()
        for _ in range(3):
            for i in order:
                got = r20(batches[i], threads=threads)
                if not np.array_equal(got, want[i]):
                    failures.append((threads, i, float(np.abs(got - want[i]).max())))

    workers = [
        threading.Thread(target=work, args=(range(20), None)),
        threading.Thread(target=work, args=(reversed(range(20)), 1)),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures


def test_the_gil_is_released_while_running(shared, cifar):
    model = resnetc.load(pretrained(shared, "resnet56"))
    images = cifar[0][:500]
    model(images[:1])  # planned before timing
    ticks, done = [], threading.Event()

    def heartbeat():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    beat = threading.Thread(target=heartbeat)
    beat.start()
    time.sleep(0.01)
    start = time.perf_counter()
    model(images, threads=1)
    end = time.perf_counter()
    done.set()
    beat.join()
    during = [t for t in ticks if start < t < end]
    # Holding the GIL would stop the heartbeat for the whole run (≥ 0.3 s here).
    assert end - start > 0.1
    assert len(during) >= 10, f"{len(during)} heartbeats in a {end - start:.2f} s run"


def test_eval_gives_the_pretrained_accuracy(shared, r20):
    data = shared / "data" / "cifar10" / "test_first1000.bin"
    report = resnetc.eval(r20, data)
    assert report["schema_version"] == 1
    assert report["images"] == 1000
    assert report["top1"] == pytest.approx(0.915)
    assert report["correct"] == 915
    assert len(report["per_class"]) == 10
    by_path = resnetc.eval(pretrained(shared, "resnet20"), data, limit=100, batch=50)
    assert by_path["images"] == 100
    with pytest.raises(resnetc.InvalidInput, match="std"):
        resnetc.eval(r20, data, std=(0.2, 0.0, 0.2))


def test_read_cifar_and_normalize_give_the_models_input(shared, cifar, r20):
    images, labels = cifar
    data = resnetc.read_cifar(shared / "data" / "cifar10" / "test_first1000.bin")
    assert data["pixels"].shape == (1000, 3, 32, 32) and data["pixels"].dtype == np.uint8
    assert data["labels"].dtype == np.int64 and (data["labels"] == labels).all()
    assert data["class_names"][:2] == ["airplane", "automobile"] and data["format"] == "cifar10-bin"
    x = resnetc.normalize(data["pixels"])
    assert x.dtype == np.float32 and x.shape == (1000, 3, 32, 32)
    np.testing.assert_allclose(x, images, atol=1e-6)
    assert resnetc.normalize(data["pixels"][0]).shape == (3, 32, 32)
    mean = (0.5, 0.5, 0.5)
    np.testing.assert_allclose(resnetc.normalize(data["pixels"][:2], mean=mean, std=mean),
                               data["pixels"][:2] / 127.5 - 1.0, atol=1e-6)
    assert resnetc.read_cifar(shared / "data" / "cifar10" / "test_first1000.bin", limit=7)["labels"].shape == (7,)
    with pytest.raises(resnetc.InvalidInput, match=r"uint8 \[N,3,32,32\].*float32 \[2,3,32,32\]"):
        resnetc.normalize(images[:2])
    with pytest.raises(resnetc.InvalidInput, match=r"\[4,32,32,3\]"):
        resnetc.normalize(data["pixels"][:4].transpose(0, 2, 3, 1))
    with pytest.raises(resnetc.InvalidInput, match="std"):
        resnetc.normalize(data["pixels"][:1], std=(1.0, 0.0, 1.0))


def test_inspect_and_ports(r20):
    info = r20.inspect()
    assert info["schema_version"] == 1 == resnetc.SCHEMA_VERSION
    assert info["ops"]["FusedConv"] == 19
    assert r20.inputs == [{"name": "input", "shape": [info["inputs"][0]["shape"][0], 3, 32, 32], "dtype": "float32"}]
    assert isinstance(r20.inputs[0]["shape"][0], str)  # the dynamic batch
    assert r20.outputs[0]["shape"][1] == 10
    assert r20.classes == 10
    assert r20.opt_level == 3
    assert resnetc.load(r20.path, opt_level=0).inspect()["ops"].get("FusedConv") is None
    assert "resnet20" in repr(r20)


def test_everything_has_a_docstring():
    for name in ["load", "eval", "validate", "read_cifar", "normalize", "Model", "Report", "Error", "InvalidInput", "InvalidModel",
                 "UnsupportedModel", "ResnetcEnvironmentError", "CheckFailed"]:
        assert getattr(resnetc, name).__doc__, name
    for cls in (resnetc.Model, resnetc.Report):
        for attr, value in vars(cls).items():
            if not attr.startswith("_") or attr in ("__call__",):
                assert value.__doc__, f"{cls.__name__}.{attr}"
    assert issubclass(resnetc.InvalidInput, ValueError)
    assert issubclass(resnetc.ResnetcEnvironmentError, OSError)


def test_stubs_match_the_native_module():
    import ast
    import inspect
    from pathlib import Path

    native = resnetc._resnetc
    stubs = ast.parse((Path(native.__file__).parent / "_resnetc.pyi").read_text())

    def params(fn):
        return [p for p in inspect.signature(fn).parameters if p != "self"]

    def stub_params(node):
        return [a.arg for a in node.args.args if a.arg != "self"]

    names = set()
    for node in stubs.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
            assert stub_params(node) == params(getattr(native, node.name)), node.name
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            cls = getattr(native, node.name)
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name != "__call__":
                    attr = getattr(cls, f.name)
                    if callable(attr):
                        assert stub_params(f) == params(attr), f"{node.name}.{f.name}"
                    else:  # a property in the stub, a getter in the module
                        assert any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)
    exported = {n for n in dir(native) if not n.startswith("_") and n != "SCHEMA_VERSION"}
    assert exported == names
