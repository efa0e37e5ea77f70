"""resnetc: a compiler toolchain for CIFAR ResNets exported from PyTorch to ONNX.

Usage::

    import resnetc
    model = resnetc.load("resnet20.onnx")        # ONNX (optimized on load) or a compiled .rnc
    logits = model(images)                       # float32 NCHW numpy array, or a CPU torch tensor
    model.compile("resnet20.rnc", target="cpu")  # an artifact that loads without packing anything
    report = resnetc.validate("resnet20.onnx", images, torch_logits)
    print(report)                                # ends in PASSED or FAILED

``resnetc.eval(model, "test_batch.bin")`` measures accuracy on a CIFAR test set;
``resnetc.read_cifar`` reads one (pixels, labels, class names) and ``resnetc.normalize`` makes its
pixels a model's input, for pipelines of your own (``examples/ray_eval.py``). Errors are
``resnetc.Error`` subclasses by kind: ``InvalidModel``, ``UnsupportedModel``, ``InvalidInput``
(a ``ValueError``), ``ResnetcEnvironmentError`` (an ``OSError``), ``CheckFailed``.
"""

from ._errors import (
    CheckFailed,
    Error,
    InvalidInput,
    InvalidModel,
    ResnetcEnvironmentError,
    UnsupportedModel,
)
from ._resnetc import (
    SCHEMA_VERSION,
    Model,
    Report,
    __version__,
    eval,
    load,
    normalize,
    read_cifar,
    validate,
)

# `eval` is left out: `from resnetc import *` must not shadow the builtin.
__all__ = [
    "SCHEMA_VERSION",
    "CheckFailed",
    "Error",
    "InvalidInput",
    "InvalidModel",
    "Model",
    "Report",
    "ResnetcEnvironmentError",
    "UnsupportedModel",
    "__version__",
    "load",
    "normalize",
    "read_cifar",
    "validate",
]
