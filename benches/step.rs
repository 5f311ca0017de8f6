//! Where a preset's ascent step goes, in classviz: the parameterisation to
//! images, the random views, the network's forward pass, its backward pass
//! (the vector-Jacobian product less a forward pass), the chain back through
//! the views and the parameterisation, and the optimiser. Each preset at its
//! CPU defaults, a batch of 4 classes on EfficientNet-Lite0, TorchScript.
//!
//!     cargo bench --bench step [-- STEPS]
//!
//! Prints a table of milliseconds per step (medians of STEPS steps, default
//! 20, after 3 warm-up steps). bench/lucid.py and bench/maco.py print the same
//! phases of the Python references.

use std::time::Instant;

use anyhow::Result;
use classviz_core::param::Start;
use classviz_core::presets::PresetName;
use classviz_core::rng::Rng;
use classviz_core::spectrum::Magnitude;
use classviz_core::views::{apply_views, canvas_spec, draw_views, scaled_pixels};
use classviz_engine::model::Model;
use classviz_engine::network::{Cotangent, Pass, Weights, Wrt};
use classviz_engine::precision::Precision;
use classviz_records::choice::Choice;
use tch::{Device, Kind, Tensor};

const PHASES: [&str; 6] =
    ["parameterisation", "views", "forward", "backward", "chain", "optimiser"];
const CLASSES: [i64; 4] = [1, 100, 130, 963];

fn main() -> Result<()> {
    let steps: usize = std::env::args().filter_map(|a| a.parse().ok()).next().unwrap_or(20);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::open(&root.join("weights/efficientnet_lite0.pt"), Device::Cpu)?;
    let magnitude = Magnitude::load(&root.join("weights/maco_magnitude.npy"))?;
    println!("| preset | {} | step |", PHASES.join(" | "));
    println!("| --- |{}", " ---: |".repeat(PHASES.len() + 1));
    for name in PresetName::ALL {
        let times = phases(&model, &magnitude, *name, steps)?;
        let cells: Vec<String> = times.iter().map(|t| format!("{:.1}", t * 1e3)).collect();
        println!("| {name} | {} | {:.1} |", cells.join(" | "), times.iter().sum::<f64>() * 1e3);
    }
    Ok(())
}

/// The median seconds of each phase over `steps` steps of preset `name`.
fn phases(
    model: &Model,
    magnitude: &Magnitude,
    name: PresetName,
    steps: usize,
) -> Result<Vec<f64>> {
    let preset = name.preset();
    let mut style = preset.style.clone();
    let side = model.input().height;
    style.transforms.pad = scaled_pixels(style.transforms.pad, side);
    style.transforms.jitter = scaled_pixels(style.transforms.jitter, side);
    let canvas = canvas_spec(model.input(), style.transforms.canvas);
    let count = CLASSES.len() as i64;
    let mut param = style.param.build(count, &canvas, Some(magnitude), Start::Own, Device::Cpu)?;
    let mut optimizer = style.optimizer.start(param.tensor())?;
    let views = i64::from(style.transforms.views.max(1));
    let targets: Vec<i64> = (0..views).flat_map(|_| CLASSES).collect();
    let weights = Weights::one_hot_rows(&targets, model.info.labels.len() as i64, Device::Cpu)?;
    let mut rng = Rng::new(0);
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    for step in 0..steps + 3 {
        let mut marks = vec![Instant::now()];
        let images = param.images()?;
        marks.push(Instant::now());
        let drawn = draw_views(&style.transforms, model.input(), 1.0, &mut rng);
        let seen = apply_views(&images, &style.transforms, &drawn, model.input())?;
        marks.push(Instant::now());
        let _ = tch::no_grad(|| model.forward(&seen, &[]))?;
        marks.push(Instant::now());
        let pass = Pass {
            taps: &[],
            cotangent: Cotangent::Fixed(&weights),
            wrt: Wrt::Input,
            precision: Precision::Fp32,
        };
        let (_, at_input) = model.network.vjp(&seen.f_detach()?, pass)?;
        marks.push(Instant::now());
        let gradient = if param.is_pixels() && style.transforms.is_identity() {
            at_input
        } else {
            let objective = seen.f_mul(&at_input)?.f_sum(Kind::Float)?;
            Tensor::f_run_backward(&[&objective], &[param.tensor()], false, false)?.remove(0)
        };
        marks.push(Instant::now());
        tch::no_grad(|| -> Result<()> {
            let update = optimizer.step(&gradient, preset.learning_rate)?;
            let _ = param.tensor_mut().f_add_(&update)?;
            Ok(())
        })?;
        marks.push(Instant::now());
        if step >= 3 {
            for (phase, pair) in marks.windows(2).enumerate() {
                let seconds = (pair[1] - pair[0]).as_secs_f64();
                // The vector-Jacobian product runs a forward pass of its own.
                let seconds = if phase == 3 {
                    seconds - samples[2].last().copied().unwrap_or(0.0)
                } else {
                    seconds
                };
                samples[phase].push(seconds.max(0.0));
            }
        }
    }
    Ok(samples.into_iter().map(median).collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
