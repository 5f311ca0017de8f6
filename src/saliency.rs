//! Image-specific class saliency (Simonyan et al. §3): which pixels decide the
//! class. The map is `M(i,j) = max_ch |w(i,j,ch)|` for an attribution `w`:
//! the gradient `∂S_c/∂I` at the photo (the paper), SmoothGrad, gradient ×
//! input, or integrated gradients. Faithfulness is measured by the deletion
//! metric of Petsiuk et al. 2018 against a random pixel order.

use anyhow::{bail, Result};
use image::{Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

use crate::image_io::Pixels;
use crate::model::{torch_error, Classifier};
/// Deletion removes this fraction of the pixels per step (Petsiuk et al.: 5%).
const DELETION_STEP: f64 = 0.05;
/// Fixed seed of the random pixel order the deletion score is compared with.
const RANDOM_ORDER_SEED: i64 = 20_180_607;
/// `--box`: the box covers the largest connected region of the pixels holding
/// this fraction of the total saliency mass.
const BOX_MASS: f64 = 0.5;
/// Images per forward/backward pass for the samples of SmoothGrad and IG, and
/// for the deletion curve: 5 on CPU (`cargo bench --bench saliency`: 25
/// SmoothGrad samples in batches of 5 beat 25 single passes, batches of 8 or 16
/// lost), 32 on CUDA (not yet measured).
fn sample_batch(device: Device) -> i64 {
    if device.is_cuda() {
        32
    } else {
        5
    }
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
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::SmoothGrad { .. } => "smoothgrad",
            Method::GradientTimesInput => "gradient-x-input",
            Method::IntegratedGradients { .. } => "integrated-gradients",
        }
    }
}

/// The reference image of integrated gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    Black,
    /// The dataset mean: zero in the model's space.
    Mean,
}

/// Attributions `[C, H, W]` for `class` at the normalised image `x` (`[1, C, H, W]`),
/// and the saliency map `[H, W]`.
pub fn attribute(
    model: &Classifier,
    x: &Tensor,
    class: i64,
    method: Method,
) -> Result<(Tensor, Tensor)> {
    let attribution = match method {
        Method::Gradient => gradients(model, x, class)?.f_get(0)?,
        Method::GradientTimesInput => gradients(model, x, class)?.f_mul(x)?.f_get(0)?,
        Method::SmoothGrad { samples, noise } => {
            // Smilkov et al.: average the gradient over noisy copies, then
            // take the map of the average.
            let range = f64::try_from(x.f_max()?.f_sub(&x.f_min()?)?)?;
            let mut total = x.f_zeros_like()?;
            for chunk in chunks(samples, sample_batch(x.device())) {
                let copies = x.f_expand([chunk, -1, -1, -1], false)?;
                let noisy = copies.f_add(&copies.f_randn_like()?.f_mul_scalar(noise * range)?)?;
                let summed = gradients(model, &noisy, class)?.f_sum_dim_intlist(
                    [0].as_slice(),
                    true,
                    Kind::Float,
                )?;
                total = total.f_add(&summed)?;
            }
            total.f_div_scalar(samples as f64)?.f_get(0)?
        }
        Method::IntegratedGradients { steps, baseline } => {
            let reference = match baseline {
                Baseline::Mean => x.f_zeros_like()?,
                Baseline::Black => model.input.normalise(&x.f_zeros_like()?)?,
            };
            let delta = x.f_sub(&reference)?;
            let mut total = x.f_zeros_like()?;
            let mut done = 0;
            for chunk in chunks(steps, sample_batch(x.device())) {
                let alphas = Tensor::f_arange(chunk, (Kind::Float, x.device()))?
                    .f_add_scalar(done as f64 + 0.5)?
                    .f_div_scalar(steps as f64)?;
                let path = reference.f_add(&alphas.f_view([chunk, 1, 1, 1])?.f_mul(&delta)?)?;
                let summed = gradients(model, &path, class)?.f_sum_dim_intlist(
                    [0].as_slice(),
                    true,
                    Kind::Float,
                )?;
                total = total.f_add(&summed)?;
                done += chunk;
            }
            delta.f_mul(&total)?.f_div_scalar(steps as f64)?.f_get(0)?
        }
    };
    let map = attribution.f_abs()?.f_amax([0].as_slice(), false)?;
    Ok((attribution, map))
}

/// Split `total` samples into batches of at most `size`.
fn chunks(total: i64, size: i64) -> impl Iterator<Item = i64> {
    (0..total).step_by(size as usize).map(move |start| size.min(total - start))
}

/// ∂S_c/∂x for each image of the batch `x`.
fn gradients(model: &Classifier, x: &Tensor, class: i64) -> Result<Tensor> {
    let input = x.f_detach()?.f_set_requires_grad(true)?;
    let score = model.logits(&input)?.f_select(1, class)?.f_sum(Kind::Float)?;
    Ok(Tensor::f_run_backward(&[&score], &[&input], false, false).map_err(torch_error)?.remove(0))
}

/// The deletion curve's area for pixels removed in `order` (flat indices,
/// most important first): pixels are set to the mean (zero in model space)
/// 5% at a time and the target probability recorded. Lower is better.
pub fn deletion_auc(model: &Classifier, x: &Tensor, class: i64, order: &Tensor) -> Result<f64> {
    let pixels = order.size()[0];
    let steps = (1.0 / DELETION_STEP).round() as i64;
    let (height, width) = (x.size()[2], x.size()[3]);
    let mut images = Vec::with_capacity(steps as usize + 1);
    for step in 0..=steps {
        let removed = (pixels * step) / steps;
        let mut keep = Tensor::f_ones([pixels], (Kind::Float, x.device()))?;
        if removed > 0 {
            let _ = keep.f_index_fill_(0, &order.f_narrow(0, 0, removed)?, 0.0)?;
        }
        images.push(x.f_mul(&keep.f_view([1, 1, height, width])?)?);
    }
    let batch = Tensor::f_cat(&images, 0)?;
    let probs = tch::no_grad(|| -> Result<Tensor> {
        let mut out = Vec::new();
        let size = sample_batch(x.device());
        for start in (0..batch.size()[0]).step_by(size as usize) {
            let len = size.min(batch.size()[0] - start);
            out.push(model.probabilities(&batch.f_narrow(0, start, len)?)?.f_select(1, class)?);
        }
        Ok(Tensor::f_cat(&out, 0)?)
    })?;
    let curve = Vec::<f64>::try_from(probs.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
    Ok(trapezoid(&curve, DELETION_STEP))
}

/// Area under equally spaced samples.
fn trapezoid(values: &[f64], spacing: f64) -> f64 {
    values.windows(2).map(|pair| (pair[0] + pair[1]) / 2.0 * spacing).sum()
}

/// Pixel order by decreasing saliency.
pub fn saliency_order(map: &Tensor) -> Result<Tensor> {
    Ok(map.f_reshape([-1])?.f_argsort(0, true)?)
}

/// A fixed pseudo-random pixel order (the deletion metric's baseline).
pub fn random_order(pixels: i64, device: Device) -> Result<Tensor> {
    tch::manual_seed(RANDOM_ORDER_SEED);
    Ok(Tensor::f_randperm(pixels, (Kind::Int64, device))?)
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
    let mut label = vec![0usize; values.len()];
    let mut best = (0usize, (0, 0, 0, 0));
    let mut next = 0;
    for start in 0..values.len() {
        if !selected[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        let (mut count, mut bounds) = (0usize, (usize::MAX, usize::MAX, 0, 0));
        let mut stack = vec![start];
        label[start] = next;
        while let Some(index) = stack.pop() {
            let (y, x) = (index / width, index % width);
            count += 1;
            bounds = (bounds.0.min(x), bounds.1.min(y), bounds.2.max(x), bounds.3.max(y));
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                    if ny < 0 || nx < 0 || ny >= height as i64 || nx >= width as i64 {
                        continue;
                    }
                    let neighbour = ny as usize * width + nx as usize;
                    if selected[neighbour] && label[neighbour] == 0 {
                        label[neighbour] = next;
                        stack.push(neighbour);
                    }
                }
            }
        }
        if count > best.0 {
            best = (count, bounds);
        }
    }
    if best.0 == 0 {
        bail!("the saliency map is all zero: no box");
    }
    let (x0, y0, x1, y1) = best.1;
    Ok((x0 as u32, y0 as u32, x1 as u32, y1 as u32))
}

/// The map's values, row by row, on the CPU.
fn map_values(map: &Tensor) -> Result<Vec<f64>> {
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
