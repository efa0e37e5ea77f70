//! The `resnetc` tool as a library: loading models, reading inputs, summarizing graphs. The binary
//! (`src/main.rs`) is a thin clap layer over this, and the integration tests in `tests/` use it too.

pub mod cifar;
pub mod model;
pub mod npy;
pub mod validate;

pub use model::{fix_batch, load_any, load_model, load_model_with, Device, Model, ModelStats};
