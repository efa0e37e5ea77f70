//! [`evaluate`]: a model's accuracy on a CIFAR test set (what `resnetc eval` prints), and
//! [`classify`]: a batch of logits as named top-k classes with softmax probabilities (named by
//! [`class_names`]).

use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use serde::Serialize;

use crate::cifar::{Dataset, Format, Normalize};
use crate::{Device, Error, ErrorKind, Model, Result, SessionOptions};

/// How to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    pub normalize: Normalize,
    /// Images per run.
    pub batch: usize,
    pub device: Device,
    pub session: SessionOptions,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            normalize: Normalize::default(),
            batch: 100,
            device: Device::Cpu,
            session: SessionOptions::default(),
        }
    }
}

/// A model's accuracy on a dataset. Fractions are of `images`; a row of logits holding NaN counts
/// as wrong for top-1 and top-5 alike.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct EvalReport {
    pub schema_version: u32,
    /// The dataset file read.
    pub dataset: String,
    pub format: Format,
    pub normalize: Normalize,
    /// The backend that ran (`cpu`, `reference`, `cuda`).
    pub device: String,
    pub images: usize,
    /// Images whose top-1 class is their label.
    pub correct: usize,
    pub top1: f64,
    pub top5: f64,
    /// Images whose logits hold NaN or an infinity.
    pub nonfinite: usize,
    pub per_class: Vec<ClassAccuracy>,
    /// `confusion[true][predicted]`: images of class `true` whose top-1 class is `predicted`
    /// (rows of images with NaN logits are not counted).
    pub confusion: Vec<Vec<usize>>,
    pub seconds: f64,
    pub images_per_s: f64,
    /// What the run did differently from what was asked (a fallback, a capped thread count).
    pub notes: Vec<String>,
}

/// One class's share of an [`EvalReport`].
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ClassAccuracy {
    pub index: usize,
    pub label: String,
    pub images: usize,
    pub correct: usize,
    /// `correct / images`; `null` when the set holds no image of the class.
    pub accuracy: Option<f64>,
}

/// The largest batch [`evaluate`] runs at once.
pub const MAX_EVAL_BATCH: usize = 4096;

/// Runs `model` over every image of `data` in batches and counts what it got right.
/// `progress(done, total)` is called after each batch.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport> {
    if !(1..=MAX_EVAL_BATCH).contains(&opts.batch) {
        return Err(Error::invalid_input(format!(
            "the batch must be between 1 and {MAX_EVAL_BATCH}, not {}",
            opts.batch
        )));
    }
    let classes = data.classes();
    match model.classes() {
        Some(c) if c == classes => {}
        Some(c) => {
            return Err(Error::invalid_input(format!(
                "the model has {c} classes and {} ({}) has {classes}: evaluate a {classes}-class model on it",
                crate::escape::path(&data.path),
                data.format
            )))
        }
        None => {
            return Err(Error::new(
                ErrorKind::UnsupportedModel,
                "the model's output is not [batch, classes] with a fixed class count",
            ))
        }
    }
    if data.is_empty() {
        return Err(Error::invalid_input(format!(
            "{} holds no images",
            crate::escape::path(&data.path)
        )));
    }
    let batch = opts.batch.min(data.len());
    model.check_input(resnetc_ir::DType::F32, &[batch, 3, 32, 32])?;
    let mut session = model.session_with(
        opts.device,
        &SessionOptions {
            fallback_to_reference: true,
            ..opts.session.clone()
        },
    )?;
    let mut notes = Vec::new();
    if let Some(why) = session.fallback() {
        notes.push(format!(
            "the CPU backend cannot run this graph ({why}); using the reference executor"
        ));
    }
    notes.extend(session.threads_note().map(String::from));

    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut correct, mut top5, mut nonfinite) = (0, 0, 0);
    let start = Instant::now();
    let mut done = 0;
    while done < data.len() {
        let range = done..(done + batch).min(data.len());
        let x = data.batch(range.clone(), &opts.normalize);
        let y = session.run(x.view())?;
        for (row, &label) in y.axis_iter(Axis(0)).zip(&data.labels()[range.clone()]) {
            let label = label as usize;
            if row.iter().any(|v| !v.is_finite()) {
                nonfinite += 1;
                continue;
            }
            let ranked = rank(row.as_slice().unwrap_or(&row.to_vec()));
            confusion[label][ranked[0]] += 1;
            correct += (ranked[0] == label) as usize;
            top5 += ranked.iter().take(5).any(|&c| c == label) as usize;
        }
        done = range.end;
        progress(done, data.len());
    }
    let seconds = start.elapsed().as_secs_f64();
    let images = data.len();
    let per_class = (0..classes)
        .map(|c| {
            let images = data.labels().iter().filter(|&&l| l as usize == c).count();
            let correct = confusion[c][c];
            ClassAccuracy {
                index: c,
                label: data.class_names[c].clone(),
                images,
                correct,
                accuracy: (images > 0).then(|| correct as f64 / images as f64),
            }
        })
        .collect();
    Ok(EvalReport {
        schema_version: crate::SCHEMA_VERSION,
        dataset: data.path.display().to_string(),
        format: data.format,
        normalize: opts.normalize,
        device: session.describe(),
        images,
        correct,
        top1: correct as f64 / images as f64,
        top5: top5 as f64 / images as f64,
        nonfinite,
        per_class,
        confusion,
        seconds,
        images_per_s: images as f64 / seconds.max(1e-9),
        notes,
    })
}

/// Class indices by falling logit (ties: the lower index first). Assumes finite values.
fn rank(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
}

/// One of an image's most likely classes.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Prediction {
    pub index: usize,
    /// The class name, when names are known.
    pub label: Option<String>,
    /// Softmax probability; `null` when the logits hold NaN or an infinity.
    pub probability: Option<f64>,
}

/// What `resnetc run --json` prints: each image's most likely classes.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RunReport {
    pub schema_version: u32,
    pub images: Vec<ImageClasses>,
}

/// One image of a [`RunReport`].
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ImageClasses {
    /// The image file, or `input.npy[i]` for the i-th image of an array.
    pub file: String,
    /// Most likely first; empty when the logits hold NaN or an infinity.
    pub top: Vec<Prediction>,
}

/// The names of a model's classes, for [`classify`]: read from `file` when given (a text file, one
/// name a line), else CIFAR-10's for a 10-class model, else none (classes are then shown by index).
pub fn class_names(model: &Model, file: Option<&std::path::Path>) -> Result<Option<Vec<String>>> {
    Ok(match file {
        Some(path) => Some(crate::cifar::read_class_names(path)?),
        None if model.classes() == Some(10) => Some(
            crate::cifar::CIFAR10_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        None => None,
    })
}

/// The `k` most likely classes of every row of `logits` ([images, classes]) with softmax
/// probabilities (computed in f64, max-subtracted), named by `labels` when given. A row holding
/// NaN or an infinity gets no classes: there is no honest ranking of it.
pub fn classify(
    logits: ArrayView2<f32>,
    k: usize,
    labels: Option<&[String]>,
) -> Result<Vec<Vec<Prediction>>> {
    let classes = logits.ncols();
    if let Some(l) = labels {
        if l.len() != classes {
            return Err(Error::invalid_input(format!(
                "{} class names for a model with {classes} classes",
                l.len()
            )));
        }
    }
    Ok(logits
        .axis_iter(Axis(0))
        .map(|row| {
            let row: Vec<f32> = row.to_vec();
            if row.iter().any(|v| !v.is_finite()) {
                return Vec::new();
            }
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            rank(&row)
                .into_iter()
                .take(k)
                .map(|c| Prediction {
                    index: c,
                    label: labels.map(|l| l[c].clone()),
                    probability: Some((row[c] as f64 - max).exp() / sum),
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_ranks_and_normalizes() {
        let logits = ndarray::arr2(&[[0.0f32, 2.0, 1.0], [f32::NAN, 0.0, 0.0]]);
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let p = classify(logits.view(), 2, Some(&names)).unwrap();
        assert_eq!(p[0].iter().map(|p| p.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(p[0][0].label.as_deref(), Some("b"));
        let e = [0.0f64, 2.0, 1.0].map(f64::exp);
        let want = e[1] / e.iter().sum::<f64>();
        assert!((p[0][0].probability.unwrap() - want).abs() < 1e-12);
        assert!(p[1].is_empty(), "a NaN row gets no ranking");
        assert!(classify(logits.view(), 1, Some(&names[..2])).is_err());
    }

    #[test]
    fn ties_rank_the_lower_class_first() {
        assert_eq!(rank(&[1.0, 3.0, 3.0, 0.0]), [1, 2, 0, 3]);
    }
}
