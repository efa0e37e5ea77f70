//! The input contract: what a model accepts, checked before any backend runs, with a message that
//! says what was expected, what was given and how to fix the usual mistakes (NHWC images).

use resnetc_ir::{DType, Dim, Graph, GraphInfo, Op};

use crate::escape;
use crate::{Error, Result};

/// A graph input or output: its name, element type and dimensions (fixed or symbolic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl Port {
    /// The dimensions, `None` where symbolic (the batch of a dynamic-batch export).
    pub fn dims(&self) -> Vec<Option<usize>> {
        self.shape.iter().map(|d| d.fixed()).collect()
    }

    /// The shape as text: `[N,3,32,32]` (a symbol prints as its name).
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Sym(s) => escape::name(s),
            })
            .collect();
        format!("[{}]", dims.join(","))
    }

    /// Checks a value of `dtype` and `shape` against this port; returns the batch (dim 0, or 1 for
    /// a rank-0 port). Every fixed dimension must match; a symbolic one takes any size ≥ 1.
    pub fn check(&self, dtype: DType, shape: &[usize]) -> Result<usize> {
        let name = escape::name(&self.name);
        let given = format!(
            "[{}]",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let expected = self.shape_text();
        if dtype != self.dtype {
            return Err(Error::invalid_input(format!(
                "input '{name}' must be {} {expected}, but the given array is {dtype} {given}{}",
                self.dtype,
                if self.dtype == DType::F32 {
                    " (convert it with x.astype(np.float32))"
                } else {
                    ""
                }
            )));
        }
        if shape.len() != self.shape.len() {
            return Err(Error::invalid_input(format!(
                "input '{name}' must have shape {expected}{}, but the given array has shape {given} (rank {} instead of {})",
                layout_hint(&self.shape),
                shape.len(),
                self.shape.len()
            )));
        }
        if self.is_image() && looks_nhwc(&self.shape, shape) {
            return Err(Error::invalid_input(format!(
                "input '{name}' must be NCHW {expected}, but the given array {given} looks like NHWC (channels last); \
                 transpose it: in numpy x.transpose(0, 3, 1, 2), in PyTorch x.permute(0, 3, 1, 2)"
            )));
        }
        if let Some(axis) = (0..shape.len()).find(|&a| shape[a] == 0) {
            return Err(Error::invalid_input(format!(
                "input '{name}' has shape {given}: dimension {axis} is empty; the model takes {expected}"
            )));
        }
        for (axis, (d, &got)) in self.shape.iter().zip(shape).enumerate() {
            let Dim::Fixed(want) = *d else { continue };
            if want == got {
                continue;
            }
            let what = match (axis, self.is_image()) {
                (0, _) => format!(
                    "its batch is {got}, but this model's batch is fixed at {want} (export it with a dynamic batch axis, or give {want} images at a time)"
                ),
                (1, true) => format!(
                    "it has {got} channels, but the model takes {want} (dimension 1 of NCHW)"
                ),
                (2 | 3, true) => format!(
                    "its images are {}×{}, but the model takes {}×{} images (dimensions 2 and 3 of NCHW)",
                    shape[2], shape[3], fixed(&self.shape[2]), fixed(&self.shape[3])
                ),
                _ => format!("dimension {axis} is {got}, but the model takes {want}"),
            };
            return Err(Error::invalid_input(format!(
                "input '{name}' must have shape {expected}, but the given array has shape {given}: {what}"
            )));
        }
        Ok(shape.first().copied().unwrap_or(1))
    }

    /// A rank-4 port: a batch of images, NCHW.
    fn is_image(&self) -> bool {
        self.shape.len() == 4
    }
}

fn fixed(d: &Dim) -> String {
    match d {
        Dim::Fixed(n) => n.to_string(),
        Dim::Sym(s) => escape::name(s),
    }
}

fn layout_hint(shape: &[Dim]) -> &'static str {
    if shape.len() == 4 {
        " (NCHW: batch, channels, height, width)"
    } else {
        ""
    }
}

/// Whether `given` is the NHWC form of an NCHW `shape` (and not also its NCHW form).
fn looks_nhwc(shape: &[Dim], given: &[usize]) -> bool {
    let fits = |d: &Dim, n: usize| d.fixed().is_none_or(|f| f == n);
    let nchw = shape.iter().zip(given).all(|(d, &n)| fits(d, n));
    let nhwc = fits(&shape[0], given[0])
        && fits(&shape[1], given[3])
        && fits(&shape[2], given[1])
        && fits(&shape[3], given[2]);
    nhwc && !nchw
}

/// The graph's inputs as ports, in order.
pub(crate) fn graph_inputs(graph: &Graph) -> Vec<Port> {
    graph
        .inputs
        .iter()
        .filter_map(|&id| match graph.op(id) {
            Op::Input { ty, .. } => Some(Port {
                name: graph.node(id).outputs.first().cloned().unwrap_or_default(),
                dtype: ty.dtype,
                shape: ty.shape.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The graph's outputs as ports, in order (types from validation).
pub(crate) fn graph_outputs(graph: &Graph, info: &GraphInfo) -> Vec<Port> {
    graph
        .outputs
        .iter()
        .map(|o| {
            let ty = info.ty(o.value);
            Port {
                name: o.name.clone(),
                dtype: ty.map_or(DType::F32, |t| t.dtype),
                shape: ty.map_or_else(Vec::new, |t| t.shape.clone()),
            }
        })
        .collect()
}

/// Refuses an input that holds NaN or an infinity, naming the image and the position of the first
/// such value: a non-finite pixel gives NaN logits, which answer no question, and it almost always
/// means broken preprocessing (a division by a zero std, an unread file). Callers who want
/// PyTorch's behaviour anyway (NaN propagates to the logits, on every backend and at every
/// optimization level) skip the check ([`crate::SessionOptions::allow_nonfinite`],
/// `--allow-nonfinite`).
pub fn check_finite(x: ndarray::ArrayViewD<'_, f32>) -> Result<()> {
    let x = x.as_standard_layout();
    let flat = x.as_slice().expect("standard layout is contiguous");
    if flat.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let first = flat.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let count = flat.iter().filter(|v| !v.is_finite()).count();
    // The flat index as a multi-index, batch first.
    let mut index = vec![0; x.ndim()];
    let mut rest = first;
    for (slot, &len) in index.iter_mut().zip(x.shape()).rev() {
        *slot = rest % len.max(1);
        rest /= len.max(1);
    }
    let (image, at) = match index.split_first() {
        Some((&n, at)) => (n, at.to_vec()),
        None => (0, Vec::new()),
    };
    let what = if flat[first].is_nan() {
        "NaN"
    } else if flat[first] > 0.0 {
        "+inf"
    } else {
        "-inf"
    };
    let place = match at[..] {
        [c, h, w] => format!(" (channel {c}, row {h}, column {w})"),
        _ => String::new(),
    };
    let more = match count {
        1 => String::new(),
        n => format!("; {n} of the batch's {} values are not finite", flat.len()),
    };
    Err(Error::invalid_input(format!(
        "image {image} holds {what} at {at:?}{place}{more}. Non-finite inputs give NaN logits, not a class: \
         check the preprocessing, or allow them (--allow-nonfinite, SessionOptions::allow_nonfinite) \
         to get NaN through as PyTorch does"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_port(batch: Dim) -> Port {
        Port {
            name: "input".into(),
            dtype: DType::F32,
            shape: vec![batch, Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)],
        }
    }

    #[test]
    fn shapes_are_checked_dimension_by_dimension() {
        let dynamic = image_port(Dim::Sym("N".into()));
        let fixed = image_port(Dim::Fixed(2));
        // (port, dtype, shape, Ok(batch) or a fragment of the message)
        type Case<'a> = (&'a Port, DType, &'a [usize], Result<usize, &'a str>);
        let cases: &[Case] = &[
            (&dynamic, DType::F32, &[8, 3, 32, 32], Ok(8)),
            (&fixed, DType::F32, &[2, 3, 32, 32], Ok(2)),
            (
                &dynamic,
                DType::F32,
                &[8, 32, 32, 3],
                Err("looks like NHWC"),
            ),
            (&dynamic, DType::F32, &[8, 3072], Err("rank 2 instead of 4")),
            (
                &dynamic,
                DType::F32,
                &[8, 96, 32],
                Err("rank 3 instead of 4"),
            ),
            (
                &dynamic,
                DType::F32,
                &[1, 3, 64, 16],
                Err("its images are 64×16, but the model takes 32×32"),
            ),
            (
                &dynamic,
                DType::F32,
                &[1, 1, 32, 32],
                Err("it has 1 channels, but the model takes 3"),
            ),
            (
                &fixed,
                DType::F32,
                &[8, 3, 32, 32],
                Err("batch is fixed at 2"),
            ),
            (
                &dynamic,
                DType::F32,
                &[0, 3, 32, 32],
                Err("dimension 0 is empty"),
            ),
            (
                &dynamic,
                DType::F64,
                &[1, 3, 32, 32],
                Err("astype(np.float32)"),
            ),
        ];
        for (port, dtype, shape, want) in cases {
            let got = port.check(*dtype, shape);
            match (want, got) {
                (Ok(b), Ok(g)) => assert_eq!(*b, g, "{shape:?}"),
                (Err(frag), Err(e)) => {
                    assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
                    assert!(e.message().contains(frag), "{shape:?}: {e}");
                    let given = format!(
                        "[{}]",
                        shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    assert!(
                        e.message().contains(&given),
                        "{shape:?}: names the given shape: {e}"
                    );
                }
                (want, got) => panic!("{shape:?}: wanted {want:?}, got {got:?}"),
            }
        }
    }
}
