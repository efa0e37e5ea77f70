//! 2-D convolution, NCHW input and OIHW weights, with groups, strides, dilations and padding.
//!
//! Each output element starts at zero and receives `w * x` for every tap that falls inside the input,
//! in the order input channel, kernel row, kernel column (all increasing); the bias is added last.
//! Taps that fall in the padding are skipped, which equals adding `w * 0` for any finite weight.
//!
//! The loops run over whole output rows so that the innermost loop is a plain slice update the
//! compiler can vectorize without reordering (Rust never reassociates or fuses float operations).

use ndarray::{ArcArray, IxDyn};
use resnetc_ir::{Conv, Tensor};

use crate::error::EvalError;
use crate::util::{check_size, dims, from_vec, invalid, map_float, row_major, typed, Float};

const OP: &str = "Conv";

/// Attribute values above this are refused so that all index arithmetic fits in `i64`.
pub(crate) const MAX_ATTR: usize = 1 << 31;

pub(crate) fn conv(
    c: &Conv,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    Ok(map_float!(OP, "input", x, a => {
        let bias = bias.map(|b| typed(OP, "bias", b)).transpose()?;
        conv_t(c, a, typed(OP, "weights", w)?, bias)?
    }))
}

/// Spatial geometry of one axis: input length, padding before, kernel, stride, dilation, output length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axis {
    pub len: usize,
    pub pad: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub out: usize,
}

impl Axis {
    /// The output positions `o` whose tap `k` lands inside the input (`0 <= o*s + k*d - pad < len`),
    /// as a half-open range.
    pub fn valid(&self, k: usize) -> std::ops::Range<usize> {
        let (s, len) = (self.stride as i64, self.len as i64);
        let off = (k * self.dilation) as i64 - self.pad as i64;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = if len - off <= 0 {
            0
        } else {
            (len - off + s - 1) / s
        };
        let hi = hi.min(self.out as i64);
        lo as usize..(hi.max(lo)) as usize
    }

    /// The input position of output `o`, tap `k` (only meaningful inside [`Axis::valid`]).
    pub fn input(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation - self.pad
    }
}

/// Checks the window attributes and turns `window` (the op's `Conv::window` or `AvgPool::window`,
/// the validator's geometry) into per-axis geometry `[height, width]`, with the padding at the end
/// of each axis.
#[allow(clippy::too_many_arguments)]
pub(crate) fn geometry(
    op: &'static str,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: &resnetc_ir::Padding,
    window: impl FnOnce() -> Result<resnetc_ir::Window, String>,
) -> Result<([Axis; 2], [usize; 2]), EvalError> {
    for (what, v) in [
        ("kernel", kernel),
        ("strides", strides),
        ("dilations", dilations),
    ] {
        if v.contains(&0) || v.iter().any(|&d| d > MAX_ATTR) {
            return Err(invalid(
                op,
                format!("{what} {} must be between 1 and 2^31", dims(&v)),
            ));
        }
    }
    let auto = !matches!(padding, resnetc_ir::Padding::Explicit(_));
    if auto && hw.contains(&0) {
        return Err(invalid(
            op,
            format!(
                "automatic padding needs a non-empty input, got spatial size {}",
                dims(&hw)
            ),
        ));
    }
    if hw.iter().any(|&d| d > MAX_ATTR) {
        return Err(invalid(
            op,
            format!("spatial size {} is larger than 2^31", dims(&hw)),
        ));
    }
    // Safe to resolve now; the padding it returns is within `limits::PADDING`.
    let win = window().map_err(|m| invalid(op, m))?;
    let pads = win.pads;
    let axes = [0, 1].map(|i| Axis {
        len: hw[i],
        pad: pads[i],
        kernel: kernel[i],
        stride: strides[i],
        dilation: dilations[i],
        out: win.out[i],
    });
    Ok((axes, [pads[2], pads[3]]))
}

fn conv_t<T: Float>(
    c: &Conv,
    x: &ArcArray<T, IxDyn>,
    w: &ArcArray<T, IxDyn>,
    bias: Option<&ArcArray<T, IxDyn>>,
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let (&[n, cin, h, wi], &[cout, cin_g, kh, kw]) = (x.shape(), w.shape()) else {
        return Err(invalid(
            OP,
            format!(
                "only 2-D convolution is supported: input {} and weights {} must both have rank 4",
                dims(x.shape()),
                dims(w.shape())
            ),
        ));
    };
    let group = c.group;
    if group == 0 || cout % group != 0 {
        return Err(invalid(
            OP,
            format!("group {group} does not divide the {cout} output channels"),
        ));
    }
    if cin != cin_g * group {
        let per_group = if group > 1 {
            format!(" ({cin_g} per group x {group} groups)")
        } else {
            String::new()
        };
        return Err(invalid(
            OP,
            format!(
                "input has {cin} channels but weights expect {}{per_group}",
                cin_g * group
            ),
        ));
    }
    if [kh, kw] != c.kernel {
        return Err(invalid(
            OP,
            format!(
                "kernel_shape {} disagrees with the weights' {}",
                dims(&c.kernel),
                dims(&[kh, kw])
            ),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [cout] {
            return Err(invalid(
                OP,
                format!("bias must have shape [{cout}], got {}", dims(b.shape())),
            ));
        }
    }
    let ([ay, ax], _) = geometry(
        OP,
        [h, wi],
        c.kernel,
        c.strides,
        c.dilations,
        &c.padding,
        || c.window([h, wi]),
    )?;
    let (oh, ow) = (ay.out, ax.out);
    check_size(OP, &[n, cout, oh, ow])?;

    let x = row_major(x);
    let w = row_major(w);
    let bias = bias.map(row_major);
    let cout_g = cout / group;
    let mut out = vec![T::zero(); n * cout * oh * ow];
    if !out.is_empty() {
        let rows_y: Vec<_> = (0..kh).map(|k| ay.valid(k)).collect();
        let rows_x: Vec<_> = (0..kw).map(|k| ax.valid(k)).collect();
        for (plane_index, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
            let (b, oc) = (plane_index / cout, plane_index % cout);
            let g = oc / cout_g;
            for icg in 0..cin_g {
                let ic = g * cin_g + icg;
                let input = &x[(b * cin + ic) * h * wi..][..h * wi];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let weight = w[((oc * cin_g + icg) * kh + ky) * kw + kx];
                        let cols = rows_x[kx].clone();
                        if cols.is_empty() {
                            continue;
                        }
                        for oy in rows_y[ky].clone() {
                            let in_row = &input[ay.input(oy, ky) * wi..][..wi];
                            let out_row = &mut plane[oy * ow..][cols.clone()];
                            let ix0 = ax.input(cols.start, kx);
                            axpy(out_row, weight, &in_row[ix0..], ax.stride);
                        }
                    }
                }
            }
            if let Some(bias) = &bias {
                plane.iter_mut().for_each(|o| *o += bias[oc]);
            }
        }
    }
    Ok(from_vec(&[n, cout, oh, ow], out))
}

/// `out[i] += a * x[i * stride]`.
fn axpy<T: Float>(out: &mut [T], a: T, x: &[T], stride: usize) {
    if stride == 1 {
        for (o, &v) in out.iter_mut().zip(x) {
            *o += a * v;
        }
    } else {
        for (o, &v) in out.iter_mut().zip(x.iter().step_by(stride)) {
            *o += a * v;
        }
    }
}
