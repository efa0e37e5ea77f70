//! One error type for the library, with a kind that callers (the CLI's exit codes, the Python
//! package's exception classes) branch on, and the layer's own message kept whole.

use std::fmt;

/// What kind of thing went wrong: the model, the input, the machine, or a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The model file is malformed: not ONNX, a broken graph, a damaged artifact.
    InvalidModel,
    /// A well-formed model that resnetc (or the chosen backend) does not handle.
    UnsupportedModel,
    /// The input given to a model, or a value given to an option, does not fit.
    InvalidInput,
    /// The machine: a file that cannot be read or written, NVRTC or the GPU driver missing.
    Environment,
    /// A check ran and failed (a `validate` mismatch, an accuracy below a threshold).
    CheckFailed,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidModel => "invalid model",
            ErrorKind::UnsupportedModel => "unsupported model",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Environment => "environment",
            ErrorKind::CheckFailed => "check failed",
        }
    }
}

/// resnetc's error: a [`kind`](Error::kind), a message that says what to do, and the underlying
/// error of the layer that found it (`source`).
// The message already includes the underlying error's text; it is kept (for `downcast_ref`) but
// not exposed as `source()`, which would make error-chain printers repeat it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    inner: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: crate::escape::message(&message.into()),
            inner: None,
        }
    }

    /// An error of `kind` whose message is `source`'s, keeping `source` for callers that downcast.
    pub fn from_source(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            message: crate::escape::message(&source.to_string()),
            inner: Some(Box::new(source)),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the context chain's prefixes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `what` in front of its message ("loading m.onnx: …").
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.message = crate::escape::message(&format!("{what}: {}", self.message));
        self
    }

    /// The underlying error of type `E`, if that is what this one wraps.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.inner.as_deref()?.downcast_ref::<E>()
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn io(what: impl fmt::Display, path: &std::path::Path, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Environment,
            format!("{what} {}: {e}", crate::escape::path(path)),
        )
    }
}

/// Adds context to a `Result` of any error that converts into [`Error`].
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

macro_rules! kind_of {
    ($($ty:ty => |$e:ident| $kind:expr;)*) => {$(
        impl From<$ty> for Error {
            fn from($e: $ty) -> Error {
                let kind = $kind;
                Error::from_source(kind, $e)
            }
        }
    )*};
}

kind_of! {
    resnetc_onnx::ImportError => |e| {
        use resnetc_onnx::ImportError as I;
        match &e {
            I::Io { .. } => ErrorKind::Environment,
            I::Opset { .. } | I::UnsupportedOp { .. } => ErrorKind::UnsupportedModel,
            _ => ErrorKind::InvalidModel,
        }
    };
    resnetc_onnx::ExportError => |e| match &e {
        resnetc_onnx::ExportError::Io { .. } => ErrorKind::Environment,
        resnetc_onnx::ExportError::Node { .. } => ErrorKind::UnsupportedModel,
    };
    resnetc_ir::ValidationError => |e| ErrorKind::InvalidModel;
    crate::zoo::ZooError => |e| ErrorKind::InvalidInput;
    resnetc_passes::PassError => |e| ErrorKind::InvalidModel;
    resnetc_artifact::ArtifactError => |e| ErrorKind::InvalidModel;
    resnetc_cpu::PlanError => |e| ErrorKind::InvalidModel;
    resnetc_cpu::CpuError => |e| {
        use resnetc_cpu::CpuError as C;
        match &e {
            C::BufferSize { .. } | C::Count { .. } => ErrorKind::InvalidInput,
            C::IsaUnavailable { .. } => ErrorKind::Environment,
            _ => ErrorKind::UnsupportedModel,
        }
    };
    resnetc_cuda::CudaError => |e| {
        use resnetc_cuda::CudaError as C;
        match &e {
            C::Unsupported { .. } | C::Interface(_) | C::UnknownType { .. } => ErrorKind::UnsupportedModel,
            C::Batch(_) | C::Input(_) | C::BadArch(_) => ErrorKind::InvalidInput,
            C::Program(_) => ErrorKind::InvalidModel,
            C::NvrtcNotFound { .. } | C::Nvrtc { .. } | C::NoDriver(_) | C::NoDevice(_)
            | C::Driver { .. } | C::NoImage { .. } => ErrorKind::Environment,
            // Generated source that NVRTC refuses is resnetc's bug, reported as the model not
            // being handled.
            C::Compile { .. } => ErrorKind::UnsupportedModel,
        }
    };
    resnetc_reference::ExecError => |e| match &e {
        resnetc_reference::ExecError::InputCount { .. } | resnetc_reference::ExecError::Input { .. } => {
            ErrorKind::InvalidInput
        }
        _ => ErrorKind::InvalidModel,
    };
}
