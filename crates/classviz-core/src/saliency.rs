//! Image-specific class saliency (Simonyan et al. §3): which pixels decide the
//! class. The map is `M(i,j) = max_ch |w(i,j,ch)|` for an attribution `w`:
//! the gradient `∂S_c/∂I` at the photo (the paper), SmoothGrad, gradient ×
//! input, or integrated gradients. Faithfulness is measured by the deletion
//! and insertion metrics of Petsiuk et al. 2018 (RISE) against the mean of
//! several random pixel orders.

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

use crate::cam::{self, CamKind};
use crate::priors;
use crate::rng::Rng;
use crate::segment;
use classviz_engine::input::Normalise;
use classviz_engine::knobs;
use classviz_engine::model::Model;
use classviz_engine::network::{Cotangent, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;
use classviz_records::pixels::Pixels;

/// Deletion and insertion change this fraction of the pixels per step (Petsiuk et al.: 5%).
const CURVE_STEP: f64 = 0.05;
/// Seed of the random pixel orders the metrics are compared with (plus `--seed`).
pub const RANDOM_ORDER_SEED: u64 = 20_180_607;
/// Random orders averaged for the baseline: the mean of 32 moves by about 5%
/// or less between seeds on the test photos (`cargo bench --bench baseline`).
pub const DEFAULT_RANDOM_ORDERS: i64 = 32;
/// Insertion starts from the photo blurred with this σ (pixels at the input
/// size), as RISE does: the class is gone, colours and layout stay.
pub const INSERTION_BLUR_SIGMA: f64 = 5.0;
/// `--box`: the box covers the largest connected region of the pixels holding
/// this fraction of the total saliency mass.
const BOX_MASS: f64 = 0.5;
/// Images per forward/backward pass for the samples of SmoothGrad and IG, and
/// for the metric curves: 5 on CPU (`cargo bench --bench saliency`: 25
/// SmoothGrad samples in batches of 5 beat 25 single passes, batches of 8 or 16
/// lost), 16 on CUDA (`bench/gpu.sh` on an H200: every method on a photo in
/// 10.7 s at 16, 11.2 s at 32, 11.9 s at 64).
pub(crate) fn sample_batch(device: Device) -> i64 {
    knobs::sample_batch().unwrap_or(if device.is_cuda() { 16 } else { 5 })
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The paper: the gradient of S_c at the image.
    Gradient,
    /// Smilkov et al. 2017: the gradient averaged over `samples` noisy copies,
    /// noise σ = `noise` × (max − min) of the input.
    SmoothGrad { samples: i64, noise: f64 },
    /// gradient ⊙ (x − mean image).
    GradientTimesInput,
    /// Sundararajan et al. 2017 with a Riemann midpoint sum of `steps`.
    IntegratedGradients { steps: i64, baseline: Baseline },
    /// A class activation map at the model's tap `tap`.
    Cam { kind: CamKind, tap: TapId },
}

classviz_records::choice! {
    /// `saliency --method`, before a class activation map's tap is known.
    pub enum MethodName {
        /// |∂S_c/∂I|, the paper's map.
        Gradient = "gradient",
        /// The gradient averaged over noisy copies of the photo (Smilkov et al. 2017).
        Smoothgrad = "smoothgrad",
        /// The gradient times the photo (in the model's space).
        GradientXInput = "gradient-x-input",
        /// The gradient integrated along a path from a baseline image (Sundararajan et al. 2017).
        IntegratedGradients = "integrated-gradients",
        /// Grad-CAM at --tap (Selvaraju et al. 2017).
        GradCam = "grad-cam",
        /// Grad-CAM++ at --tap (Chattopadhay et al. 2018).
        GradCamPlusPlus = "grad-cam++",
        /// LayerCAM at --tap (Jiang et al. 2021).
        LayerCam = "layer-cam",
        /// Score-CAM at --tap: forward passes only (Wang et al. 2020).
        ScoreCam = "score-cam",
        /// Every method (the class activation maps where the model has taps), with a sheet comparing them.
        All = "all",
    }
}

impl MethodName {
    /// The class activation map it names, if it does.
    pub fn cam(self) -> Option<CamKind> {
        match self {
            MethodName::GradCam => Some(CamKind::GradCam),
            MethodName::GradCamPlusPlus => Some(CamKind::GradCamPlusPlus),
            MethodName::LayerCam => Some(CamKind::LayerCam),
            MethodName::ScoreCam => Some(CamKind::ScoreCam),
            _ => None,
        }
    }
}

/// The settings of the methods that take any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MethodSettings {
    pub samples: i64,
    pub noise: f64,
    pub steps: i64,
    pub baseline: Baseline,
}

impl Method {
    /// The methods `name` stands for, with `settings`; class activation maps
    /// at `tap` (for `all`, only where there is one).
    pub fn resolve(
        name: MethodName,
        settings: MethodSettings,
        tap: Option<TapId>,
    ) -> Result<Vec<Method>> {
        let MethodSettings { samples, noise, steps, baseline } = settings;
        let single = match name {
            MethodName::Gradient => Method::Gradient,
            MethodName::Smoothgrad => Method::SmoothGrad { samples, noise },
            MethodName::GradientXInput => Method::GradientTimesInput,
            MethodName::IntegratedGradients => Method::IntegratedGradients { steps, baseline },
            MethodName::All => {
                let mut all = vec![
                    Method::Gradient,
                    Method::SmoothGrad { samples, noise },
                    Method::GradientTimesInput,
                    Method::IntegratedGradients { steps, baseline },
                ];
                all.extend(
                    tap.into_iter()
                        .flat_map(|tap| CamKind::ALL.map(|kind| Method::Cam { kind, tap })),
                );
                return Ok(all);
            }
            cam => {
                let kind = cam.cam().context("a class activation map")?;
                Method::Cam { kind, tap: tap.context("a class activation map needs a tap")? }
            }
        };
        Ok(vec![single])
    }

    /// σ in pixels of the Gaussian that pools a map before it ranks pixels
    /// (`--smooth` overrides). Contribution maps are signed, and their sign
    /// flips from pixel to pixel on the grid of the network's strided
    /// convolutions; pooling each pixel with its neighbours (σ = 1) ranks
    /// regions by their net evidence. On the five test photos σ = 1 took
    /// integrated gradients' insertion on coffee.png from 0.429 (below random,
    /// 0.432) to 0.452 and kept every deletion score below random; σ = 2 and 4
    /// traded deletion away (README, "Saliency maps"). Sensitivity maps stay
    /// as the paper defines them.
    pub fn default_smoothing(&self) -> f64 {
        match self {
            Method::Gradient | Method::SmoothGrad { .. } | Method::Cam { .. } => 0.0,
            Method::GradientTimesInput | Method::IntegratedGradients { .. } => {
                CONTRIBUTION_SMOOTHING
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::SmoothGrad { .. } => "smoothgrad",
            Method::GradientTimesInput => "gradient-x-input",
            Method::IntegratedGradients { .. } => "integrated-gradients",
            Method::Cam { kind, .. } => kind.name(),
        }
    }

    /// The model's tap a class activation map is taken at.
    pub fn tap(&self) -> Option<TapId> {
        match self {
            Method::Cam { tap, .. } => Some(*tap),
            _ => None,
        }
    }
}

classviz_records::choice! {
    /// The reference image of integrated gradients.
    pub enum Baseline {
        /// A black image.
        Black = "black",
        /// The dataset mean: zero in the model's space.
        Mean = "mean",
        /// The photo blurred (Gaussian, σ = 5 px): what insertion starts from.
        Blur = "blur",
    }
}

/// Attributions `[C, H, W]` for `class` at the normalised image `x` (`[1, C, H, W]`),
/// and the saliency map `[H, W]`.
pub fn attribute(
    model: &Model,
    x: &Tensor,
    class: i64,
    method: Method,
) -> Result<(Tensor, Tensor)> {
    let attribution = match method {
        Method::Cam { kind, tap } => {
            let map = cam::cam(model, x, class, kind, tap)?;
            return Ok((map.f_unsqueeze(0)?, map));
        }
        Method::Gradient => gradients(model, x, class)?.f_get(0)?,
        Method::GradientTimesInput => gradients(model, x, class)?.f_mul(x)?.f_get(0)?,
        Method::SmoothGrad { samples, noise } => smoothgrad(model, x, class, samples, noise)?,
        Method::IntegratedGradients { steps, baseline } => {
            integrated_gradients(model, x, class, steps, baseline)?
        }
    };
    let map = match method {
        // Sensitivities (the paper's gradient, SmoothGrad): how strongly a
        // pixel moves the score either way, M = max_ch |w|.
        Method::Gradient | Method::SmoothGrad { .. } => {
            attribution.f_abs()?.f_amax([0].as_slice(), false)?
        }
        // Contributions (gradient × input, integrated gradients; IG's sum to
        // the score's change from the baseline): the signed sum over channels,
        // so that evidence for the class ranks first and evidence against last.
        Method::GradientTimesInput | Method::IntegratedGradients { .. } | Method::Cam { .. } => {
            attribution.f_sum_dim_intlist([0].as_slice(), false, Kind::Float)?
        }
    };
    Ok((attribution, map))
}

/// Smilkov et al.: the gradient averaged over `samples` noisy copies (σ =
/// `noise` × the input's range), `[C, H, W]`; the map is taken of the average.
fn smoothgrad(model: &Model, x: &Tensor, class: i64, samples: i64, noise: f64) -> Result<Tensor> {
    let range = f64::try_from(x.f_max()?.f_sub(&x.f_min()?)?)?;
    let mut total = x.f_zeros_like()?;
    for chunk in chunks(samples, sample_batch(x.device())) {
        let copies = x.f_expand([chunk, -1, -1, -1], false)?;
        let noisy = copies.f_add(&copies.f_randn_like()?.f_mul_scalar(noise * range)?)?;
        total = total.f_add(&summed_gradients(model, &noisy, class)?)?;
    }
    Ok(total.f_div_scalar(samples as f64)?.f_get(0)?)
}

/// Sundararajan et al.: (x − baseline) times the gradient averaged along the
/// straight path from the baseline, a midpoint Riemann sum of `steps`, `[C, H, W]`.
fn integrated_gradients(
    model: &Model,
    x: &Tensor,
    class: i64,
    steps: i64,
    baseline: Baseline,
) -> Result<Tensor> {
    let reference = match baseline {
        Baseline::Mean => x.f_zeros_like()?,
        Baseline::Black => model.input().normalise(&x.f_zeros_like()?)?,
        Baseline::Blur => insertion_start(x)?,
    };
    let delta = x.f_sub(&reference)?;
    let mut total = x.f_zeros_like()?;
    let mut done = 0;
    for chunk in chunks(steps, sample_batch(x.device())) {
        let alphas = Tensor::f_arange(chunk, (Kind::Float, x.device()))?
            .f_add_scalar(done as f64 + 0.5)?
            .f_div_scalar(steps as f64)?;
        let path = reference.f_add(&alphas.f_view([chunk, 1, 1, 1])?.f_mul(&delta)?)?;
        total = total.f_add(&summed_gradients(model, &path, class)?)?;
        done += chunk;
    }
    Ok(delta.f_mul(&total)?.f_div_scalar(steps as f64)?.f_get(0)?)
}

/// The gradients of a batch summed over it, `[1, C, H, W]`.
fn summed_gradients(model: &Model, batch: &Tensor, class: i64) -> Result<Tensor> {
    Ok(gradients(model, batch, class)?.f_sum_dim_intlist([0].as_slice(), true, Kind::Float)?)
}

/// The default σ of contribution maps' pooling (`Method::default_smoothing`).
pub const CONTRIBUTION_SMOOTHING: f64 = 1.0;

/// `map` (`[H, W]`) pooled by a Gaussian of `sigma` pixels (unchanged at 0).
pub fn smooth_map(map: &Tensor, sigma: f64) -> Result<Tensor> {
    let size = map.size();
    let (height, width) = (size[0], size[1]);
    Ok(priors::gaussian_blur(&map.f_view([1, 1, height, width])?, sigma)?
        .f_view([height, width])?)
}

/// Split `total` samples into batches of at most `size`.
fn chunks(total: i64, size: i64) -> impl Iterator<Item = i64> {
    (0..total).step_by(size as usize).map(move |start| size.min(total - start))
}

/// ∂S_c/∂x for each image of the batch `x`.
fn gradients(model: &Model, x: &Tensor, class: i64) -> Result<Tensor> {
    let weights = class_weights(model, x.size()[0], class)?;
    let pass = Pass {
        taps: &[],
        cotangent: Cotangent::Fixed(&weights),
        wrt: Wrt::Input,
        precision: Precision::Fp32,
    };
    Ok(model.network.vjp(x, pass)?.1)
}

/// Weights on the scores that pick class `class` in each of `rows` rows.
pub fn class_weights(model: &Model, rows: i64, class: i64) -> Result<Weights> {
    let classes = model.info.labels.len() as i64;
    let column = Tensor::f_from_slice(&[class])?.f_to_device(model.device())?;
    let scores = Tensor::f_zeros([rows, classes], (Kind::Float, model.device()))?
        .f_index_fill(1, &column, 1.0)?;
    Ok(Weights { scores: Some(scores), taps: Vec::new() })
}

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
        let probs = tch::no_grad(|| -> Result<Tensor> {
            let mut out = Vec::new();
            let total = batch.size()[0];
            for start in (0..total).step_by(size as usize) {
                let len = size.min(total - start);
                out.push(model.probabilities(&batch.f_narrow(0, start, len)?)?.f_select(1, class)?);
            }
            Ok(Tensor::f_cat(&out, 0)?)
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

/// Bounding box `(x0, y0, x1, y1)` (inclusive, in map pixels) of the largest
/// 8-connected region among the pixels that hold the top `BOX_MASS` of saliency.
pub fn bounding_box(map: &Tensor) -> Result<(u32, u32, u32, u32)> {
    let (height, width) = (map.size()[0] as usize, map.size()[1] as usize);
    let values = map_values(map)?;
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    let mut mass = 0.0;
    let mut threshold = sorted[0];
    for &value in &sorted {
        mass += value;
        threshold = value;
        if mass >= BOX_MASS * total {
            break;
        }
    }
    let selected: Vec<bool> = values.iter().map(|&v| v >= threshold && v > 0.0).collect();
    segment::largest_component_box(&selected, width, height)
        .context("the saliency map is all zero: no box")
}

/// The map's values, row by row, on the CPU.
pub fn map_values(map: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        map.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?.f_reshape([-1])?,
    )?)
}

/// Viridis, sampled at nine evenly spaced points (perceptually uniform).
const VIRIDIS: [[f64; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// A value in [0,1] on the colour map.
pub fn colour(value: f64) -> Rgb<u8> {
    let position = value.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let low = (position.floor() as usize).min(VIRIDIS.len() - 2);
    let t = position - low as f64;
    let mix = |c: usize| (VIRIDIS[low][c] * (1.0 - t) + VIRIDIS[low + 1][c] * t).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

/// Display scaling: this percentile of the map is shown at full strength.
/// Saliency maps are sparse; scaled by their maximum, almost every pixel
/// would look empty.
const DISPLAY_PERCENTILE: f64 = 99.0;

/// The map scaled to [0,1]: by its maximum (`percentile` = 100, lossless
/// order for the raw 16-bit map), or by a lower percentile and clamped (display).
pub fn normalised_map(map: &Tensor, percentile: f64) -> Result<Vec<f64>> {
    let values = map_values(map)?;
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let rank = ((percentile / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    let top = sorted.get(rank).copied().unwrap_or(0.0);
    Ok(values.iter().map(|v| if top > 0.0 { (v / top).min(1.0) } else { 0.0 }).collect())
}

/// The map for display: full strength from the 99th percentile up.
pub fn display_map(map: &Tensor) -> Result<Vec<f64>> {
    normalised_map(map, DISPLAY_PERCENTILE)
}

/// The colour-mapped saliency map.
pub fn heatmap(values: &[f64], width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| colour(values[(y * width + x) as usize]))
}

/// Opacity of the colour map over the photo, for zero and for maximal saliency.
const OVERLAY_MIN_ALPHA: f64 = 0.2;
const OVERLAY_MAX_ALPHA: f64 = 0.85;

/// The map blended over the photo, with the box drawn if given.
pub fn overlay(photo: &Pixels, values: &[f64], bbox: Option<(u32, u32, u32, u32)>) -> RgbImage {
    let (width, height) = (photo.width, photo.height);
    let mut image = RgbImage::from_fn(width, height, |x, y| {
        let index = (y * width + x) as usize;
        let base: [f64; 3] = if photo.channels == 1 {
            [f64::from(photo.data[index]); 3]
        } else {
            [0, 1, 2].map(|c| f64::from(photo.data[index * 3 + c]))
        };
        let heat = colour(values[index]);
        // The map's own strength sets how much of the heat colour shows.
        let alpha = OVERLAY_MIN_ALPHA + (OVERLAY_MAX_ALPHA - OVERLAY_MIN_ALPHA) * values[index];
        Rgb([0, 1, 2].map(|c| (base[c] * (1.0 - alpha) + f64::from(heat[c]) * alpha).round() as u8))
    });
    if let Some((x0, y0, x1, y1)) = bbox {
        let red = Rgb([255, 32, 32]);
        for thickness in 0..2u32 {
            for x in x0..=x1 {
                for y in
                    [y0.saturating_add(thickness).min(height - 1), y1.saturating_sub(thickness)]
                {
                    image.put_pixel(x, y, red);
                }
            }
            for y in y0..=y1 {
                for x in [x0.saturating_add(thickness).min(width - 1), x1.saturating_sub(thickness)]
                {
                    image.put_pixel(x, y, red);
                }
            }
        }
    }
    image
}

/// The raw map as 16-bit grayscale samples (max → 65535).
pub fn map_u16(values: &[f64]) -> Vec<u16> {
    values.iter().map(|v| (v * 65535.0).round() as u16).collect()
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
    fn smoothing_pools_neighbours_and_zero_leaves_the_map() {
        let mut delta = vec![0f32; 81];
        delta[40] = 1.0;
        let map = Tensor::from_slice(&delta).view([9, 9]);
        let same = smooth_map(&map, 0.0).unwrap();
        assert_eq!(f64::try_from((&same - &map).abs().max()).unwrap(), 0.0);
        let pooled = smooth_map(&map, 1.0).unwrap();
        let centre = pooled.double_value(&[4, 4]);
        let beside = pooled.double_value(&[4, 5]);
        assert!(centre < 1.0 && beside > 0.0 && beside < centre, "{centre} {beside}");
        assert!((f64::try_from(pooled.sum(Kind::Double)).unwrap() - 1.0).abs() < 1e-4);
        let flat = smooth_map(&Tensor::ones([9, 9], (Kind::Float, Device::Cpu)), 1.0).unwrap();
        assert!((f64::try_from(flat.min()).unwrap() - 1.0).abs() < 1e-5);
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

    #[test]
    fn colour_map_ends() {
        assert_eq!(colour(0.0), Rgb([68, 1, 84]));
        assert_eq!(colour(1.0), Rgb([253, 231, 37]));
        assert_eq!(colour(2.0), Rgb([253, 231, 37]));
    }

    #[test]
    fn box_is_the_largest_salient_region() {
        let mut values = vec![0.0f32; 10 * 12];
        // A big blob at x 2..=5, y 3..=6 and a small, equally hot one elsewhere.
        for y in 3..=6 {
            for x in 2..=5 {
                values[y * 12 + x] = 1.0;
            }
        }
        values[12 + 10] = 1.0;
        let map = Tensor::from_slice(&values).view([10, 12]);
        assert_eq!(bounding_box(&map).unwrap(), (2, 3, 5, 6));
    }

    #[test]
    fn chunks_cover_the_total() {
        assert_eq!(chunks(40, 16).collect::<Vec<_>>(), vec![16, 16, 8]);
        assert_eq!(chunks(25, 5).collect::<Vec<_>>(), vec![5; 5]);
    }
}
