//! How many random pixel orders the saliency baseline needs: for each test
//! photo, 320 random orders are scored (deletion and insertion) and split into
//! 10 disjoint groups of R orders, standing for 10 seeds. Printed per R,
//! relative to the pool's mean: the standard deviation of the group means (how
//! far the reported mean typically moves between seeds) and the largest move
//! of the 10. The baseline's count (`faithfulness::DEFAULT_RANDOM_ORDERS`) is the
//! smallest R whose typical move is under 5% on every photo.
//! `cargo bench --bench baseline`; `make bench-saliency`.

use classviz_core::attribution::faithfulness::{faithfulness, random_orders, RandomBaseline};
use classviz_engine::input::Normalise;
use classviz_engine::model::Model;
use classviz_engine::tensors;
use classviz_records::pixels::{load_photo, Fit};
use tch::Device;

const PHOTOS: [&str; 5] =
    ["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];
const GROUPS: usize = 10;
const COUNTS: [usize; 5] = [2, 4, 8, 16, 32];

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::open(&root.join("weights/efficientnet_lite0.pt"), Device::Cpu)?;
    let pool = GROUPS * COUNTS[COUNTS.len() - 1];
    println!(
        "random-order baseline: moves of the mean of R orders (10 seeds) from the mean of {pool}"
    );
    println!("| photo | R | deletion: typical | worst | insertion: typical | worst |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut worst = vec![[0.0f64; 4]; COUNTS.len()];
    for name in PHOTOS {
        let photo = load_photo(&root.join("tests/data").join(name), model.input(), Fit::Crop)?;
        let x = model.input().normalise(&tensors::pixels_to_tensor(&photo.pixels, Device::Cpu)?)?;
        let class = tch::no_grad(|| model.forward(&x, &[]).map(|o| o.scores))?
            .argmax(-1, false)
            .int64_value(&[0]);
        let orders = random_orders(x.size()[2], x.size()[3], pool as i64, 1, Device::Cpu)?;
        let scores = faithfulness(&model, &x, class, &orders)?;
        let all = RandomBaseline::of(&scores);
        for (index, &count) in COUNTS.iter().enumerate() {
            let groups: Vec<RandomBaseline> =
                scores.chunks(count).take(GROUPS).map(RandomBaseline::of).collect();
            // (typical, worst) relative move of the group means from the pool's mean.
            let moved = |get: fn(&RandomBaseline) -> f64, mean: f64| {
                let moves: Vec<f64> = groups.iter().map(|g| (get(g) - mean) / mean).collect();
                let typical =
                    (moves.iter().map(|m| m * m).sum::<f64>() / moves.len() as f64).sqrt();
                (typical, moves.iter().fold(0.0f64, |m, v| m.max(v.abs())))
            };
            let deletion = moved(|g| g.deletion_mean, all.deletion_mean);
            let insertion = moved(|g| g.insertion_mean, all.insertion_mean);
            let row = [deletion.0, deletion.1, insertion.0, insertion.1];
            for (w, v) in worst[index].iter_mut().zip(row) {
                *w = w.max(v);
            }
            println!(
                "| {name} | {count} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
                100.0 * row[0],
                100.0 * row[1],
                100.0 * row[2],
                100.0 * row[3]
            );
        }
    }
    println!("\nThe largest over the five photos:\n");
    println!("| R | deletion: typical move | worst move | insertion: typical move | worst move |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (count, row) in COUNTS.iter().zip(&worst) {
        println!(
            "| {count} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            100.0 * row[0],
            100.0 * row[1],
            100.0 * row[2],
            100.0 * row[3]
        );
    }
    Ok(())
}
