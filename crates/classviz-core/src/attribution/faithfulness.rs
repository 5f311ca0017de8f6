//! How faithful a map is to the model: the deletion and insertion metrics of
//! Petsiuk et al. 2018 (RISE), areas under the target probability as pixels
//! are removed from the photo or restored into a blurred copy, most salient
//! first, against the mean of random pixel orders.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::priors;
use crate::rng::Rng;
use classviz_engine::model::{sample_batch, Model};

/// Deletion and insertion change this fraction of the pixels per step (Petsiuk et al.: 5%).
const CURVE_STEP: f64 = 0.05;
/// Seed of the random pixel orders the metrics are compared with (plus `--seed`).
pub const RANDOM_ORDER_SEED: u64 = 20_180_607;
/// Random orders averaged for the baseline (docs/saliency.md: how far its mean
/// moves between seeds; `cargo bench --bench baseline`).
pub const DEFAULT_RANDOM_ORDERS: i64 = 32;
/// Insertion starts from the photo blurred with this σ (pixels at the input
/// size), as RISE does: the class is gone, colours and layout stay.
pub const INSERTION_BLUR_SIGMA: f64 = 5.0;

/// How faithful a pixel order is to the model, by Petsiuk et al.'s two curves
/// of the target probability, 5% of the pixels at a time, as areas under the
/// curve: **deletion** sets pixels to the mean (zero in model space), most
/// important first (lower is better); **insertion** restores the original
/// pixels, most important first, into a blurred copy (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faithfulness {
    pub deletion: f64,
    pub insertion: f64,
}

/// The faithfulness of each of `orders` (flat pixel indices, most important
/// first) for `class` at the photo `x` (`[1, C, H, W]`, model space). All the
/// curves' images go through the network together, in batches.
pub fn faithfulness(
    model: &Model,
    x: &Tensor,
    class: i64,
    orders: &[Tensor],
) -> Result<Vec<Faithfulness>> {
    let blurred = insertion_start(x)?;
    let removed = x.f_zeros_like()?;
    let points = curve_points();
    let size = sample_batch(x.device());
    let mut scores = Vec::with_capacity(orders.len());
    // A few orders at a time: each is 2 × 21 images, so memory stays bounded
    // however many orders the baseline averages.
    for group in orders.chunks(ORDERS_PER_PASS) {
        let mut images = Vec::with_capacity(group.len() * 2);
        for order in group {
            images.push(curve_images(x, &removed, order)?);
            images.push(curve_images(&blurred, x, order)?);
        }
        let batch = Tensor::f_cat(&images, 0)?;
        let probs = model.class_probabilities(batch.size()[0], size, class, |start, len| {
            Ok(batch.f_narrow(0, start, len)?)
        })?;
        let values =
            Vec::<f64>::try_from(probs.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
        scores.extend(values.chunks(2 * points).map(|pair| Faithfulness {
            deletion: trapezoid(&pair[..points], CURVE_STEP),
            insertion: trapezoid(&pair[points..], CURVE_STEP),
        }));
    }
    Ok(scores)
}

/// The image insertion starts from (and the `blur` baseline of integrated
/// gradients): the photo `x` blurred with `INSERTION_BLUR_SIGMA`.
pub fn insertion_start(x: &Tensor) -> Result<Tensor> {
    priors::gaussian_blur(x, INSERTION_BLUR_SIGMA)
}

/// Pixel orders whose curves go through the network in one group.
const ORDERS_PER_PASS: usize = 4;

/// Forward passes one pixel order costs: its deletion and insertion curves.
pub fn passes_per_order() -> usize {
    2 * curve_points()
}

/// Points on each curve: 0%, 5%, …, 100%.
fn curve_points() -> usize {
    (1.0 / CURVE_STEP).round() as usize + 1
}

/// The images along one curve, `[points, C, H, W]`: at step k the first
/// k·5% pixels of `order` are taken from `to`, the rest from `from`.
fn curve_images(from: &Tensor, to: &Tensor, order: &Tensor) -> Result<Tensor> {
    let pixels = order.size()[0];
    let steps = curve_points() as i64 - 1;
    let device = from.device();
    // rank[p] = where pixel p comes in the order.
    let rank = Tensor::f_zeros([pixels], (Kind::Int64, device))?.f_index_put(
        &[Some(order.shallow_clone())],
        &Tensor::f_arange(pixels, (Kind::Int64, device))?,
        false,
    )?;
    let counts: Vec<i64> = (0..=steps).map(|step| (pixels * step) / steps).collect();
    let counts = Tensor::f_from_slice(&counts)?.f_to_device(device)?.f_view([-1, 1])?;
    let (height, width) = (from.size()[2], from.size()[3]);
    let mask = rank.f_unsqueeze(0)?.f_lt_tensor(&counts)?.f_to_kind(from.kind())?.f_view([
        steps + 1,
        1,
        height,
        width,
    ])?;
    Ok(from.f_add(&to.f_sub(from)?.f_mul(&mask)?)?)
}

/// The baseline: faithfulness of random orders, their mean and spread.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomBaseline {
    pub orders: usize,
    pub deletion_mean: f64,
    pub deletion_std: f64,
    pub insertion_mean: f64,
    pub insertion_std: f64,
}

impl RandomBaseline {
    /// Mean and sample standard deviation of each metric over `scores`.
    pub fn of(scores: &[Faithfulness]) -> RandomBaseline {
        let stats = |values: Vec<f64>| {
            let n = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / n;
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                / (values.len().saturating_sub(1).max(1)) as f64;
            (mean, variance.sqrt())
        };
        let (deletion_mean, deletion_std) = stats(scores.iter().map(|s| s.deletion).collect());
        let (insertion_mean, insertion_std) = stats(scores.iter().map(|s| s.insertion).collect());
        RandomBaseline {
            orders: scores.len(),
            deletion_mean,
            deletion_std,
            insertion_mean,
            insertion_std,
        }
    }

    /// Whether `map`'s areas are each far enough from the means (by their
    /// standard errors) for its verdict not to move with more orders.
    pub fn decides(&self, map: Faithfulness) -> bool {
        let error =
            |std: f64| DECIDED_AT_STANDARD_ERRORS * std / (self.orders.max(1) as f64).sqrt();
        (map.deletion - self.deletion_mean).abs() >= error(self.deletion_std)
            && (map.insertion - self.insertion_mean).abs() >= error(self.insertion_std)
    }

    /// Whether `scores` beat the mean on both metrics (lower deletion, higher insertion).
    pub fn beaten_by(&self, scores: Faithfulness) -> bool {
        scores.deletion < self.deletion_mean && scores.insertion > self.insertion_mean
    }
}

/// Area under equally spaced samples.
fn trapezoid(values: &[f64], spacing: f64) -> f64 {
    values.windows(2).map(|pair| (pair[0] + pair[1]) / 2.0 * spacing).sum()
}

/// Pixel order by decreasing saliency.
pub fn saliency_order(map: &Tensor) -> Result<Tensor> {
    Ok(map.f_reshape([-1])?.f_argsort(0, true)?)
}

/// Stratified random orders: each block of `STRATUM`×`STRATUM` pixels gives
/// up its pixels in a random order, and the k-th pixels of all blocks come
/// before any (k+1)-th, among themselves in a random order. Every 5% step then
/// takes pixels evenly from the whole image, so the baseline's mean steadies
/// with far fewer orders than plain permutations need (`cargo bench --bench baseline`).
const STRATUM: usize = 4;

/// Random orders a baseline averages at the least.
pub const MIN_BASELINE_ORDERS: usize = 4;
/// A map's verdict against the baseline is decided once each of its areas is
/// this many standard errors of the baseline's mean away from that mean.
pub const DECIDED_AT_STANDARD_ERRORS: f64 = 3.0;

/// A photo's random baseline, drawn a pass of orders at a time, as far as the
/// maps compared with it need: until each map's verdict (beats random or not)
/// is decided, or `most` orders are in. Its orders are always the first of
/// [`random_orders`]`(…, most, seed, …)`, however far it went.
pub struct BaselineDraw {
    rng: Rng,
    most: usize,
    scores: Vec<Faithfulness>,
}

impl BaselineDraw {
    pub fn new(most: usize, seed: u64) -> BaselineDraw {
        BaselineDraw { rng: Rng::new(seed), most, scores: Vec::new() }
    }

    /// The baseline of `class` at the photo `x` (`[1, C, H, W]`), drawn on
    /// until `map`'s verdict against it is decided.
    pub fn deciding(
        &mut self,
        model: &Model,
        x: &Tensor,
        class: i64,
        map: Faithfulness,
    ) -> Result<RandomBaseline> {
        let (height, width) = (x.size()[2] as usize, x.size()[3] as usize);
        while self.scores.len() < self.most && !self.decides(map) {
            let take = ORDERS_PER_PASS.min(self.most - self.scores.len());
            let orders = (0..take)
                .map(|_| {
                    let order = stratified_order(height, width, &mut self.rng);
                    Ok(Tensor::f_from_slice(&order)?.f_to_device(x.device())?)
                })
                .collect::<Result<Vec<_>>>()?;
            self.scores.extend(faithfulness(model, x, class, &orders)?);
        }
        Ok(RandomBaseline::of(&self.scores))
    }

    /// Whether the orders drawn so far decide `map`'s verdict.
    fn decides(&self, map: Faithfulness) -> bool {
        self.scores.len() >= MIN_BASELINE_ORDERS && RandomBaseline::of(&self.scores).decides(map)
    }
}

/// `count` stratified random orders of a `height × width` map, drawn from `seed`.
pub fn random_orders(
    height: i64,
    width: i64,
    count: i64,
    seed: u64,
    device: Device,
) -> Result<Vec<Tensor>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let order = stratified_order(height as usize, width as usize, &mut rng);
            Ok(Tensor::f_from_slice(&order)?.f_to_device(device)?)
        })
        .collect()
}

fn stratified_order(height: usize, width: usize, rng: &mut Rng) -> Vec<i64> {
    let (rows, columns) = (height.div_ceil(STRATUM), width.div_ceil(STRATUM));
    let mut blocks: Vec<Vec<usize>> = vec![Vec::new(); rows * columns];
    for y in 0..height {
        for x in 0..width {
            blocks[(y / STRATUM) * columns + x / STRATUM].push(y * width + x);
        }
    }
    // Within each block a random order (Fisher–Yates) gives every pixel its
    // rank; pixels then sort by rank, ties broken at random.
    let mut keyed: Vec<(f64, usize)> = Vec::with_capacity(height * width);
    for block in &mut blocks {
        for i in (1..block.len()).rev() {
            block.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        keyed.extend(
            block.iter().enumerate().map(|(rank, &pixel)| (rank as f64 + rng.unit(), pixel)),
        );
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, pixel)| pixel as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_take_pixels_in_order() {
        let from = Tensor::zeros([1, 1, 2, 10], (Kind::Float, Device::Cpu));
        let to = Tensor::ones([1, 1, 2, 10], (Kind::Float, Device::Cpu));
        let order = Tensor::arange(20, (Kind::Int64, Device::Cpu)).flip([0]);
        let images = curve_images(&from, &to, &order).unwrap();
        assert_eq!(images.size(), vec![21, 1, 2, 10]);
        // Step 1 takes 1 pixel (20·1/20): the last one in memory order.
        let step1 = Vec::<f32>::try_from(images.get(1).reshape([-1])).unwrap();
        assert_eq!(step1.iter().filter(|&&v| v == 1.0).count(), 1);
        assert_eq!(step1[19], 1.0);
        assert_eq!(f64::try_from(images.get(20).sum(Kind::Double)).unwrap(), 20.0);
        assert_eq!(f64::try_from(images.get(0).sum(Kind::Double)).unwrap(), 0.0);
    }

    #[test]
    fn stratified_orders_are_permutations_that_spread_evenly() {
        let mut rng = Rng::new(3);
        let order = stratified_order(10, 8, &mut rng);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..80).collect::<Vec<i64>>(), "a permutation");
        // The first 6 pixels (one per 4×4 block of a 10×8 map) hit six different blocks.
        let blocks: std::collections::HashSet<i64> =
            order[..6].iter().map(|&p| (p / 8 / 4) * 2 + (p % 8) / 4).collect();
        assert_eq!(blocks.len(), 6);
        assert_ne!(order, stratified_order(10, 8, &mut rng), "another draw, another order");
    }

    #[test]
    fn baseline_statistics() {
        let scores = [
            Faithfulness { deletion: 0.1, insertion: 0.5 },
            Faithfulness { deletion: 0.3, insertion: 0.7 },
        ];
        let baseline = RandomBaseline::of(&scores);
        assert!((baseline.deletion_mean - 0.2).abs() < 1e-12);
        // Sample standard deviation: sqrt((0.1² + 0.1²) / 1).
        assert!((baseline.insertion_std - 0.02f64.sqrt()).abs() < 1e-9);
        assert!(baseline.beaten_by(Faithfulness { deletion: 0.1, insertion: 0.9 }));
        assert!(!baseline.beaten_by(Faithfulness { deletion: 0.1, insertion: 0.5 }));
    }

    #[test]
    fn trapezoid_of_a_line() {
        assert!((trapezoid(&[1.0, 0.5, 0.0], 0.5) - 0.5).abs() < 1e-12);
    }
}
