"""Type stubs of resnetc's native module (``resnetc._resnetc``); the docstrings are the module's own."""

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str
SCHEMA_VERSION: int

_Path = Union[str, "os.PathLike[str]"]

class Model:
    """A loaded model (from ``resnetc.load``): call it on a batch of NCHW images to get the logits."""

    def run(self, x: npt.ArrayLike, threads: Optional[int] = None, device: str = "cpu") -> npt.NDArray[np.float32]:
        """Runs a batch of float32 NCHW images; returns the logits ``[N, classes]``."""
    def __call__(self, x: npt.ArrayLike, threads: Optional[int] = None, device: str = "cpu") -> npt.NDArray[np.float32]:
        """``model(x)`` is ``model.run(x)``."""
    def compile(self, path: _Path, target: str = "cpu", batch: Optional[int] = None) -> Dict[str, Any]:
        """Writes a ``.rnc`` artifact for ``target`` (``cpu``, ``cuda``, ``cuda:sm_XX``)."""
    def inspect(self) -> Dict[str, Any]:
        """What ``resnetc inspect --json`` prints, as a dict."""
    @property
    def inputs(self) -> List[Dict[str, Any]]:
        """The graph inputs: ``name``, ``shape`` (ints, str for symbolic dims), ``dtype``."""
    @property
    def outputs(self) -> List[Dict[str, Any]]:
        """The graph outputs, as ``inputs`` describes them."""
    @property
    def classes(self) -> Optional[int]:
        """The number of classes, or None when the output's last dimension is not fixed."""
    @property
    def opt_level(self) -> int:
        """The optimization level the graph was prepared at."""
    @property
    def path(self) -> str:
        """The file the model was loaded from."""

class Report:
    """What ``resnetc.validate`` found; ``str(report)`` is the text report."""

    @property
    def passed(self) -> bool:
        """Whether every comparison was within the tolerance."""
    @property
    def rows(self) -> List[Dict[str, Any]]:
        """The comparisons, one dict each."""
    @property
    def first_divergence(self) -> Optional[Dict[str, Any]]:
        """Where values first diverge (the node, its op, the value), or None."""
    @property
    def tolerance(self) -> Dict[str, float]:
        """The tolerance used: ``atol`` and ``rtol``."""
    def to_dict(self) -> Dict[str, Any]:
        """The whole report: what ``resnetc validate --json`` prints."""

def load(path: _Path, opt_level: int = 3) -> Model:
    """Loads an ONNX model (optimized at ``opt_level``) or a compiled ``.rnc`` artifact."""

def eval(
    model_or_path: Union[Model, _Path],
    data_path: _Path,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    limit: Optional[int] = None,
    batch: int = 100,
    threads: Optional[int] = None,
    format: Optional[str] = None,
) -> Dict[str, Any]:
    """A model's accuracy on a CIFAR test set: what ``resnetc eval --json`` prints, as a dict."""

def read_cifar(path: _Path, format: Optional[str] = None, limit: Optional[int] = None) -> Dict[str, Any]:
    """A CIFAR test set as ``eval`` reads it: ``pixels`` (uint8 N×3×32×32), ``labels``, ``class_names``."""

def normalize(
    pixels: npt.ArrayLike,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> npt.NDArray[np.float32]:
    """CIFAR pixels (uint8 ``[N,]3,32,32``) as a model's float32 input: ``(pixel / 255 - mean) / std``."""

def validate(
    model_path: _Path,
    inputs: npt.ArrayLike,
    expected: npt.ArrayLike,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    against: str = "all",
    opt_level: int = 3,
) -> Report:
    """Validates a model's outputs against expected values, its unoptimized graph and tract-onnx."""
