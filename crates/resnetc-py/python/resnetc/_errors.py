"""resnetc's exceptions: one class per kind of library error (``resnetc::ErrorKind``).

Every message is the library's own, the text the ``resnetc`` command prints.
"""


class Error(Exception):
    """Base class of every error resnetc raises."""


class InvalidModel(Error):
    """The model file is malformed: not ONNX, a broken graph, a damaged ``.rnc`` artifact."""


class UnsupportedModel(Error):
    """A well-formed model that resnetc, or the chosen backend, does not handle."""


class InvalidInput(Error, ValueError):
    """The input does not fit the model (dtype, rank, shape, NHWC images, NaN), or an argument's
    value is not one resnetc takes (an unknown target or device, a zero std)."""


class ResnetcEnvironmentError(Error, OSError):
    """The machine: a file that cannot be read or written, NVRTC or the GPU driver missing."""


class CheckFailed(Error):
    """A check ran and failed."""


for _cls in (Error, InvalidModel, UnsupportedModel, InvalidInput, ResnetcEnvironmentError, CheckFailed):
    # They are resnetc's, whichever file defines them (reprs, pickling, documentation).
    _cls.__module__ = "resnetc"
del _cls
