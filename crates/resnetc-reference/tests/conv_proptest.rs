//! Conv against a naive seven-loop convolution on random shapes, strides, dilations, pads and groups.
//! Both sum in the documented order, so they must agree bit for bit.

mod common;

use common::*;
use proptest::prelude::*;
use resnetc_ir::Padding;

#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    group: usize,
    cin_g: usize,
    cout_g: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: Padding,
    bias: bool,
    seed: u64,
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        6 => [0usize..3, 0usize..3, 0usize..3, 0usize..3].prop_map(Padding::Explicit),
        1 => Just(Padding::SameUpper),
        1 => Just(Padding::SameLower),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let pair = |lo: usize, hi: usize| [lo..=hi, lo..=hi];
    (
        1usize..=2,
        1usize..=3,
        1usize..=3,
        1usize..=3,
        pair(1, 7),
        pair(1, 3),
        pair(1, 3),
        pair(1, 2),
        padding(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(batch, group, cin_g, cout_g, hw, kernel, strides, dilations, padding, bias, seed)| {
                Case {
                    batch,
                    group,
                    cin_g,
                    cout_g,
                    hw,
                    kernel,
                    strides,
                    dilations,
                    padding,
                    bias,
                    seed,
                }
            },
        )
        .prop_filter("the window must fit in the padded input", |c| {
            let pads = c.padding.resolve(c.hw, c.kernel, c.strides, c.dilations);
            (0..2).all(|i| c.hw[i] + pads[i] + pads[i + 2] > (c.kernel[i] - 1) * c.dilations[i])
        })
}

proptest! {
    #[test]
    fn conv_matches_naive(c in case()) {
        let (cin, cout) = (c.cin_g * c.group, c.cout_g * c.group);
        let mut rng = Gen::new(c.seed);
        let x = rng.tensor(&[c.batch, cin, c.hw[0], c.hw[1]]);
        let w = rng.tensor(&[cout, c.cin_g, c.kernel[0], c.kernel[1]]);
        let b = rng.tensor(&[cout]);
        let op = conv(c.kernel, c.strides, c.dilations, c.padding.clone(), c.group);
        let got = if c.bias { eval(&op, &[&x, &w, &b]) } else { eval(&op, &[&x, &w]) };
        let pads = c.padding.resolve(c.hw, c.kernel, c.strides, c.dilations);
        let bias = f32s(&b);
        let (want, shape) = naive_conv(
            &f32s(&x),
            [c.batch, cin, c.hw[0], c.hw[1]],
            &f32s(&w),
            [cout, c.cin_g, c.kernel[0], c.kernel[1]],
            c.bias.then_some(bias.as_slice()),
            c.strides,
            c.dilations,
            pads,
            c.group,
        );
        prop_assert_eq!(got.shape(), shape.as_slice());
        prop_assert_eq!(f32s(&got), want);
    }
}
