//! tract's time on a model, for `scripts/bench_compare.py`:
//! `cargo run --release --example tract_bench -- MODEL BATCH ITERS`
//! prints one JSON object like `resnetc bench --json`. tract runs on the calling thread only.

use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, batch, iters) = match args.as_slice() {
        [_, p, b, i] => (p.clone(), b.parse::<usize>()?, i.parse::<usize>()?),
        _ => {
            eprintln!("usage: tract_bench MODEL BATCH ITERS");
            std::process::exit(2);
        }
    };
    let shape = [batch, 3, 32, 32];
    let model = tract_onnx::onnx()
        .model_for_path(&path)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let data: Vec<f32> = (0..batch * 3 * 32 * 32)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
        .collect();
    let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data)?.into();
    let warm = Instant::now();
    model.run(tvec!(input.clone().into()))?;
    while warm.elapsed().as_secs_f64() < 0.2 {
        model.run(tvec!(input.clone().into()))?;
    }
    let mut times = Vec::new();
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        model.run(tvec!(input.clone().into()))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"median_ms\": {}, \"images_per_s\": {}, \"batch\": {batch}, \"threads\": 1}}",
        median * 1e3,
        batch as f64 / median
    );
    Ok(())
}
