//! Image priors beyond the paper's L2 term: total variation (Mahendran &
//! Vedaldi 2015), and Gaussian blur and clipping of weak pixels between steps
//! (Yosinski et al. 2015, "Understanding Neural Networks Through Deep
//! Visualization").

use anyhow::Result;
use tch::{Kind, Tensor};

/// The priors of a run: penalties in the objective and operations between steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Priors {
    /// Gaussian blur of the image every K steps (0: never). Pixel parameterisation only.
    pub blur_every: u32,
    pub blur_sigma: f64,
    /// Zero the pixels whose colour norm is below this percentile (0: off). Pixel only.
    pub clip_percentile: f64,
    /// Weight of the total-variation penalty Σ (Δx)² + (Δy)².
    pub tv: f64,
}

/// `--blur-sigma`'s default, in pixels.
pub const DEFAULT_BLUR_SIGMA: f64 = 0.5;

impl Priors {
    /// None: the paper's plain ascent.
    pub fn none() -> Priors {
        Priors { blur_every: 0, blur_sigma: DEFAULT_BLUR_SIGMA, clip_percentile: 0.0, tv: 0.0 }
    }

    /// Whether anything acts on the pixels between steps.
    pub fn between_steps(&self) -> bool {
        self.blur_every > 0 || self.clip_percentile > 0.0
    }

    /// Blur and clip the pixels after step `step`, as asked (outside autograd).
    pub fn apply_between_steps(&self, pixels: &mut Tensor, step: u32) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            if self.blur_every > 0 && step.is_multiple_of(self.blur_every) {
                let blurred = gaussian_blur(pixels, self.blur_sigma)?;
                pixels.f_copy_(&blurred)?;
            }
            if self.clip_percentile > 0.0 {
                let clipped = clip_low_norm(pixels, self.clip_percentile)?;
                pixels.f_copy_(&clipped)?;
            }
            Ok(())
        })
    }
}

/// Σ over the batch of (Δx)² + (Δy)² between neighbouring pixels.
pub fn total_variation(images: &Tensor) -> Result<Tensor> {
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    let dy = images.f_narrow(2, 1, h - 1)?.f_sub(&images.f_narrow(2, 0, h - 1)?)?;
    let dx = images.f_narrow(3, 1, w - 1)?.f_sub(&images.f_narrow(3, 0, w - 1)?)?;
    Ok(dy.f_square()?.f_sum(Kind::Float)?.f_add(&dx.f_square()?.f_sum(Kind::Float)?)?)
}

/// Separable Gaussian blur of each channel.
pub fn gaussian_blur(images: &Tensor, sigma: f64) -> Result<Tensor> {
    if sigma <= 0.0 {
        return Ok(images.shallow_clone());
    }
    // A kernel wider than the image only blurs towards its mean; keep it in
    // bounds (reflection padding needs radius < side).
    let size = images.size();
    let radius = ((3.0 * sigma).ceil() as i64).min(size[2].min(size[3]) - 1).max(0);
    if radius == 0 {
        return Ok(images.shallow_clone());
    }
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / total).collect();
    let c = size[1];
    let kernel = Tensor::f_from_slice(&taps)?.f_to_device(images.device())?;
    let horizontal = kernel.f_view([1, 1, 1, -1])?.f_repeat([c, 1, 1, 1])?;
    let vertical = kernel.f_view([1, 1, -1, 1])?.f_repeat([c, 1, 1, 1])?;
    let padded = images.f_pad([radius, radius, 0, 0], "reflect", None)?;
    let rows = padded.f_conv2d(&horizontal, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)?;
    let padded = rows.f_pad([0, 0, radius, radius], "reflect", None)?;
    Ok(padded.f_conv2d(&vertical, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)?)
}

/// Zero the pixels whose colour norm is below the `percentile` of their image.
pub fn clip_low_norm(images: &Tensor, percentile: f64) -> Result<Tensor> {
    let norms =
        images.f_square()?.f_sum_dim_intlist([1].as_slice(), true, Kind::Float)?.f_sqrt()?;
    let n = images.size()[0];
    let thresholds = norms
        .f_view([n, -1])?
        .f_quantile_scalar(percentile / 100.0, Some(1), true, "linear")?
        .f_view([n, 1, 1, 1])?;
    Ok(images.f_mul(&norms.f_ge_tensor(&thresholds)?.f_to_kind(images.kind())?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn blur_lowers_high_frequency_energy() {
        tch::manual_seed(1);
        let noise = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
        let blurred = gaussian_blur(&noise, 1.0).unwrap();
        let energy = |t: &Tensor| f64::try_from(total_variation(t).unwrap()).unwrap();
        assert!(
            energy(&blurred) < 0.3 * energy(&noise),
            "{} vs {}",
            energy(&blurred),
            energy(&noise)
        );
        let mean_before = f64::try_from(noise.mean(Kind::Float)).unwrap();
        let mean_after = f64::try_from(blurred.mean(Kind::Float)).unwrap();
        assert!((mean_before - mean_after).abs() < 0.05, "blur keeps the mean");
    }

    #[test]
    fn clip_zeroes_the_weakest_pixels() {
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let images = Tensor::from_slice(&values).view([1, 1, 4, 4]);
        let clipped = clip_low_norm(&images, 50.0).unwrap();
        let zeros = f64::try_from(clipped.eq(0.0).sum(Kind::Float)).unwrap();
        assert_eq!(zeros, 8.0);
    }

    #[test]
    fn total_variation_of_a_ramp() {
        // One row 0, 1, 2, 3: three steps of 1 → TV 3.
        let ramp = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0]).view([1, 1, 1, 4]);
        assert_eq!(f64::try_from(total_variation(&ramp).unwrap()).unwrap(), 3.0);
    }
}
