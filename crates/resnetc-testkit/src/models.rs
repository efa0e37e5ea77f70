//! Where the test models and data are and how they load: the fixtures of `fixtures/manifest.json`,
//! and the pretrained models, their PyTorch logits and the CIFAR-10 test images of `../shared`.

use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayD};

/// The repository root (above this crate's manifest).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("fixtures/manifest.json").is_file())
        .expect("no fixtures/manifest.json above CARGO_MANIFEST_DIR")
        .to_path_buf()
}

/// `../shared` beside the repository (or `RESNETC_SHARED`). Tests that need it fail with this message
/// when it is absent, rather than passing without checking anything.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("RESNETC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    assert!(
        dir.join("README.md").exists(),
        "the shared data folder {} is missing: these tests read the pretrained models and CIFAR-10 images from it \
         (put it beside the repository or set RESNETC_SHARED)",
        dir.display()
    );
    dir
}

pub const PRETRAINED: [&str; 4] = ["resnet20", "resnet32", "resnet44", "resnet56"];

pub fn pretrained_model(name: &str) -> PathBuf {
    shared().join(format!("models/pretrained/{name}_cifar10_pretrained.onnx"))
}

/// PyTorch's logits of a pretrained model for the first 1000 CIFAR-10 test images.
pub fn pretrained_logits(name: &str) -> ArrayD<f32> {
    read_npy(&shared().join(format!(
        "models/pretrained/{name}_cifar10_pretrained.logits_first1000.npy"
    )))
}

/// The first `n` (at most 1000) CIFAR-10 test images, NCHW, and their labels.
pub fn cifar_test_images(n: usize) -> (Array4<f32>, Vec<u8>) {
    resnetc::cifar::read_batch(&shared().join("data/cifar10/test_first1000.bin"), n).unwrap()
}

/// One fixture from `fixtures/manifest.json`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Fixture {
    pub name: String,
    pub file: String,
    pub input: String,
    pub output: String,
    pub depth: usize,
    pub shortcut: String,
    pub classes: usize,
    pub exporter: String,
    pub opset: u64,
    pub dynamic_batch: bool,
    pub bn: String,
}

impl Fixture {
    pub fn path(&self) -> PathBuf {
        repo().join("fixtures").join(&self.file)
    }

    /// The `.npy` of the fixture's input.
    pub fn input_path(&self) -> PathBuf {
        repo().join("fixtures").join(&self.input)
    }

    /// The `.npy` of PyTorch's output for the input.
    pub fn output_path(&self) -> PathBuf {
        repo().join("fixtures").join(&self.output)
    }

    pub fn input(&self) -> ArrayD<f32> {
        read_npy(&self.input_path())
    }

    pub fn expected(&self) -> ArrayD<f32> {
        read_npy(&self.output_path())
    }
}

pub fn fixtures() -> Vec<Fixture> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        models: Vec<Fixture>,
    }
    let text = std::fs::read_to_string(repo().join("fixtures/manifest.json"))
        .expect("fixtures/manifest.json");
    let m: Manifest = serde_json::from_str(&text).expect("manifest parses");
    assert!(
        m.models.len() >= 20,
        "the manifest lists {} fixtures",
        m.models.len()
    );
    m.models
}

/// The fixture named `name`.
pub fn fixture(name: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// Every fixture and pretrained model, by name.
pub fn all_models() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = fixtures()
        .into_iter()
        .map(|f| (f.name.clone(), f.path()))
        .collect();
    v.extend(
        PRETRAINED
            .iter()
            .map(|n| (n.to_string(), pretrained_model(n))),
    );
    v
}

pub fn read_npy(path: &Path) -> ArrayD<f32> {
    resnetc::npy::read_f32(path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Loads a model at the highest opt level (what `resnetc compile` uses): the fused graph the CPU and
/// CUDA backends run.
pub fn load_fused(path: &Path) -> resnetc::Model {
    resnetc::Model::load_with(
        path,
        &resnetc::LoadOptions::level(resnetc::LoadOptions::DEFAULT_OPT_LEVEL),
    )
    .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}
