//! How many random pixel orders the saliency baseline needs: for each test
//! photo, 160 random orders are scored (deletion and insertion), split into 10
//! disjoint groups of R orders, and the largest move of a group's mean from
//! the pool's mean is printed relative to the pool's mean. The baseline's count
//! (`saliency::DEFAULT_RANDOM_ORDERS`) is the smallest R whose worst move stays
//! under 5% on every photo. `cargo bench --bench baseline`; `make bench-saliency`.

use classviz::image_io::{self, load_photo, Fit};
use classviz::model::{Classifier, InputOverrides};
use classviz::saliency::{faithfulness, random_orders, RandomBaseline};
use tch::Device;

const PHOTOS: [&str; 5] =
    ["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];
const GROUPS: usize = 10;
const COUNTS: [usize; 5] = [1, 2, 4, 8, 16];

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Classifier::load(
        &root.join("weights/efficientnet_lite0.pt"),
        Device::Cpu,
        &InputOverrides::default(),
    )?;
    let pool = GROUPS * COUNTS[COUNTS.len() - 1];
    println!("random-order baseline: worst move of a group mean from the mean of {pool} orders");
    println!("| photo | R | deletion | insertion |");
    println!("| --- | ---: | ---: | ---: |");
    let mut worst = vec![(0.0f64, 0.0f64); COUNTS.len()];
    for name in PHOTOS {
        let photo = load_photo(&root.join("tests/data").join(name), &model.input, Fit::Crop)?;
        let x = model.input.normalise(&image_io::pixels_to_tensor(&photo.pixels, Device::Cpu)?)?;
        let class = tch::no_grad(|| model.logits(&x))?.argmax(-1, false).int64_value(&[0]);
        let orders = random_orders(x.size()[2], x.size()[3], pool as i64, 1, Device::Cpu)?;
        let scores = faithfulness(&model, &x, class, &orders)?;
        let all = RandomBaseline::of(&scores);
        for (index, &count) in COUNTS.iter().enumerate() {
            let groups: Vec<RandomBaseline> =
                scores.chunks(count).take(GROUPS).map(RandomBaseline::of).collect();
            let moved = |get: fn(&RandomBaseline) -> f64, mean: f64| {
                groups.iter().map(|g| (get(g) - mean).abs() / mean).fold(0.0, f64::max)
            };
            let deletion = moved(|g| g.deletion_mean, all.deletion_mean);
            let insertion = moved(|g| g.insertion_mean, all.insertion_mean);
            worst[index] = (worst[index].0.max(deletion), worst[index].1.max(insertion));
            println!("| {name} | {count} | {:.1}% | {:.1}% |", 100.0 * deletion, 100.0 * insertion);
        }
    }
    println!("\n| R | worst deletion move | worst insertion move |");
    println!("| ---: | ---: | ---: |");
    for (count, (deletion, insertion)) in COUNTS.iter().zip(&worst) {
        println!("| {count} | {:.1}% | {:.1}% |", 100.0 * deletion, 100.0 * insertion);
    }
    Ok(())
}
