//! SmoothGrad with 25 samples batched through the network, against 25
//! separate gradient passes on the same 224×224 photo (in process, model
//! loaded once). Run with `cargo bench --bench saliency` (see README).

use std::time::Instant;

use classviz_core::attribution::{attribute, Attribution, Method, MethodSettings};
use classviz_engine::input::Normalise;
use classviz_engine::model::Model;
use classviz_engine::tensors;
use classviz_records::pixels::{load_photo, Fit};
use tch::{Device, Tensor};

const SAMPLES: i64 = 25;
const REPEATS: usize = 3;

fn median_seconds(mut run: impl FnMut()) -> f64 {
    run(); // warm-up: the TorchScript executor profiles its first calls
    let mut times: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[REPEATS / 2]
}

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::open(&root.join("weights/efficientnet_lite0.pt"), Device::Cpu)?;
    let photo = load_photo(&root.join("tests/data/coffee.png"), model.input(), Fit::Crop)?;
    let x: Tensor =
        model.input().normalise(&tensors::pixels_to_tensor(&photo.pixels, Device::Cpu)?)?;
    let class = 967;
    let smooth = median_seconds(|| {
        let settings = MethodSettings { samples: SAMPLES, ..MethodSettings::default() };
        let smoothgrad = Attribution { method: Method::Smoothgrad, tap: None };
        let _ = attribute(&model, &x, class, smoothgrad, &settings).expect("smoothgrad");
    });
    let separate = median_seconds(|| {
        for _ in 0..SAMPLES {
            let gradient = Attribution { method: Method::Gradient, tap: None };
            let _ = attribute(&model, &x, class, gradient, &MethodSettings::default())
                .expect("gradient");
        }
    });
    println!(
        "coffee.png, EfficientNet-Lite0, {} threads, median of {REPEATS}:",
        tch::get_num_threads()
    );
    println!("  smoothgrad, {SAMPLES} samples batched: {smooth:.3} s");
    println!("  {SAMPLES} separate gradient passes:   {separate:.3} s");
    println!("  ratio (separate / smoothgrad):    {:.2}x", separate / smooth);
    Ok(())
}
