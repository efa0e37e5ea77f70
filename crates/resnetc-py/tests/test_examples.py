"""The package past one machine: examples/kserve_server.py answering real v2 clients
(``tritonclient.http``) and examples/ray_eval.py on a local Ray cluster, both against PyTorch's
outputs for the shared pretrained ResNet-20. Needs requirements-examples.txt (scripts/test_python.sh
installs it)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import resnetc
from conftest import tolerance


def need(module):
    """The module, or the whole file skipped when it is missing, except where the examples'
    packages are required (scripts/test_python.sh, so CI, sets RESNETC_PY_EXAMPLES=1): there a
    missing package fails."""
    if os.environ.get("RESNETC_PY_EXAMPLES") == "1":
        return __import__(module, fromlist=["_"])
    return pytest.importorskip(module, reason="pip install -r crates/resnetc-py/requirements-examples.txt")


triton = need("tritonclient.http")
need("kserve")
need("ray")
InferenceServerException = need("tritonclient.utils").InferenceServerException

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def r20_path(shared):
    return shared / "models" / "pretrained" / "resnet20_cifar10_pretrained.onnx"


@pytest.fixture(scope="module")
def torch_logits(shared):
    return np.load(shared / "models" / "pretrained" / "resnet20_cifar10_pretrained.logits_first1000.npy")


@pytest.fixture(scope="module")
def server(r20_path, tmp_path_factory):
    """The KServe example serving ResNet-20 as "resnet20" on a free port: the client's URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("kserve") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "kserve_server.py"), str(r20_path), "--model_name", "resnet20",
             "--http-port", str(port), "--enable_grpc", "false", "--threads", "1"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"127.0.0.1:{port}"
    client = triton.InferenceServerClient(url)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the KServe example exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.is_model_ready("resnet20"):
                break
        except Exception:  # not listening yet
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"the KServe example was not ready within 120 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def infer(url, x, binary=True, output="logits", input_name="input", raw=False):
    """The served model's output for `x`, through a client of its own (`raw`: the whole response)."""
    client = triton.InferenceServerClient(url)
    try:
        tensor = triton.InferInput(input_name, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        requested = triton.InferRequestedOutput(output, binary_data=binary)
        # A request without binary parts must say it is JSON: KServe reads any other body as binary.
        headers = None if binary else {"Content-Type": "application/json"}
        result = client.infer("resnet20", [tensor], outputs=[requested], headers=headers)
        return result if raw else result.as_numpy(output)
    finally:
        client.close()


def test_kserve_metadata_describes_the_model(server):
    meta = triton.InferenceServerClient(server).get_model_metadata("resnet20")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_answers_with_pytorchs_logits(server, cifar, torch_logits, binary):
    images, _ = cifar
    for lo, hi in [(0, 1), (1, 9), (100, 164)]:
        y = infer(server, images[lo:hi], binary)
        expected = torch_logits[lo:hi]
        assert y.shape == expected.shape and y.dtype == np.float32
        np.testing.assert_allclose(y, expected, rtol=0, atol=tolerance(expected))
        assert (y.argmax(1) == expected.argmax(1)).all()
    # The response is in the form asked for: binary parts, or the numbers in the JSON.
    output = infer(server, images[:2], binary, raw=True).get_output("logits")
    assert ("binary_data_size" in (output.get("parameters") or {})) == binary
    assert ("data" in output) != binary


def test_kserve_refuses_unknown_names_with_400(server, cifar):
    x = cifar[0][:1]
    with pytest.raises(InferenceServerException) as served:
        infer(server, x, output="probabilities")
    assert served.value.status() == "400" and "probabilities" in served.value.message()
    with pytest.raises(InferenceServerException) as served:
        infer(server, x, input_name="images")
    assert served.value.status() == "400"
    assert served.value.message() == "the model takes one input, 'input'; the request has 'images'"


def test_kserve_refuses_a_wrong_shape_with_400_and_the_librarys_message(server, cifar, r20_path):
    nhwc = np.ascontiguousarray(cifar[0][:2].transpose(0, 2, 3, 1))
    with pytest.raises(resnetc.InvalidInput) as direct:
        resnetc.load(r20_path)(nhwc)
    with pytest.raises(InferenceServerException) as served:
        infer(server, nhwc)
    assert served.value.status() == "400"
    assert served.value.message() == str(direct.value)
    assert "NHWC" in served.value.message()
    # Another dtype: refused with the library's message too, never converted.
    client = triton.InferenceServerClient(server)
    tensor = triton.InferInput("input", [1, 3, 32, 32], "FP64")
    tensor.set_data_from_numpy(cifar[0][:1].astype(np.float64))
    with pytest.raises(InferenceServerException) as served:
        client.infer("resnet20", [tensor])
    client.close()
    assert served.value.status() == "400"
    assert "must be f32" in served.value.message() and "astype(np.float32)" in served.value.message()


def test_kserve_serves_8_concurrent_clients(server, cifar, torch_logits):
    images, _ = cifar
    clients, rounds = 8, 4
    start = threading.Barrier(clients)
    results, errors = {}, []

    def client(k):
        try:
            start.wait()
            for r in range(rounds):
                lo = (k * rounds + r) * 25
                results[lo] = infer(server, images[lo:lo + 25])
        except Exception as e:  # reported below, with the client that met it
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert len(results) == clients * rounds
    for lo, y in results.items():
        expected = torch_logits[lo:lo + 25]
        np.testing.assert_allclose(y, expected, rtol=0, atol=tolerance(expected), err_msg=f"images {lo}..")
        assert (y.argmax(1) == expected.argmax(1)).all()


def test_ray_eval_gives_pytorchs_predictions_on_a_local_cluster(shared, cifar, r20_path, torch_logits, tmp_path):
    _, labels = cifar
    data = shared / "data" / "cifar10" / "test_first1000.bin"
    predictions = tmp_path / "predictions.npy"
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # the script starts its own local cluster
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "ray_eval.py"), str(r20_path), str(data), "--workers", "2",
         "--batch", "50", "--predictions", str(predictions), "--json"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["schema_version"] == resnetc.SCHEMA_VERSION
    assert report["images"] == 1000 and report["workers"] == 2
    pred = np.load(predictions)
    mismatches = np.flatnonzero(pred != torch_logits.argmax(1))
    assert mismatches.size == 0, f"images {mismatches[:10]} differ from PyTorch"
    assert report["correct"] == int((pred == labels).sum()) == 915  # resnetc eval's 91.5 %
    assert not list(tmp_path.glob("*.partial-*")), "the partial file was renamed into place"


@pytest.mark.parametrize("case", ["bad data set", "zero std"])
def test_ray_eval_refuses_bad_input_before_any_cluster_starts(shared, r20_path, tmp_path, case):
    data = shared / "data" / "cifar10" / "test_first1000.bin"
    args = [str(r20_path), str(data), "--std", "0.2,0,0.2"]
    if case == "bad data set":
        bad = tmp_path / "test_batch.bin"
        bad.write_bytes(b"\x00" * 100)
        args = [str(r20_path), str(bad)]
    run = subprocess.run([sys.executable, str(EXAMPLES / "ray_eval.py"), *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stderr[-2000:]
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert "Ray" not in run.stderr  # no cluster was started (ray.init logs "Started a local Ray instance")
