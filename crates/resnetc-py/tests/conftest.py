"""Paths and data for the Python package's tests: the repository's fixtures and the shared data
(``RESNETC_SHARED``, or ``../shared`` beside the repository)."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "fixtures" / "models"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def fixture_names():
    """Every fixture model of ``fixtures/models`` (each has ``.input.npy`` and ``.output.npy``)."""
    return sorted(p.stem for p in FIXTURES.glob("*.onnx"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data folder; tests that need it fail (never skip) when it is missing."""
    path = Path(os.environ.get("RESNETC_SHARED", REPO.parent / "shared"))
    if not (path / "models" / "pretrained").is_dir():
        pytest.fail(
            f"the shared data folder {path} is missing: these tests read the pretrained models and "
            "CIFAR-10 images from it (put it beside the repository or set RESNETC_SHARED)"
        )
    return path


@pytest.fixture(scope="session")
def cifar(shared):
    """The 1000 shared CIFAR-10 test images, read from the binary layout with numpy and normalized
    as the pretrained models were trained (pixels / 255, then mean and std): (images, labels)."""
    raw = np.fromfile(shared / "data" / "cifar10" / "test_first1000.bin", dtype=np.uint8)
    records = raw.reshape(1000, 3073)
    labels = records[:, 0].astype(np.int64)
    pixels = records[:, 1:].reshape(1000, 3, 32, 32).astype(np.float32) / 255.0
    return ((pixels - MEAN) / STD).astype(np.float32), labels


def fixture(name):
    """A fixture's model path, input and PyTorch output."""
    return (
        FIXTURES / f"{name}.onnx",
        np.load(FIXTURES / f"{name}.input.npy"),
        np.load(FIXTURES / f"{name}.output.npy"),
    )


def tolerance(expected):
    """The project's tolerance for logits: max(1e-4, 2e-5 × max|expected|)."""
    return max(1e-4, 2e-5 * float(np.abs(expected).max()))
