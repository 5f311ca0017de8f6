//! Beyond the paper: parameterisations, transformation robustness, image
//! priors and optimisers that make class models look like pictures rather than
//! adversarial texture.
//!
//! - Fourier parameterisation in a decorrelated colour space (Olah et al.,
//!   "Feature Visualization", Distill 2017);
//! - random padding, jitter, scaling and rotation before every forward pass
//!   (same source);
//! - Gaussian blur every K steps and clipping of low-norm pixels (Yosinski et
//!   al. 2015, "Understanding Neural Networks Through Deep Visualization");
//! - total variation (Mahendran & Vedaldi 2015);
//! - Adam.

use std::f64::consts::PI;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::input::InputSpec;

/// `--param`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Optimise the pixels of the zero-centred image (the paper).
    Pixel,
    /// Optimise a 1/f-scaled spectrum in decorrelated colour, squashed into
    /// [0,1] around the model's mean.
    Fourier,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// Plain gradient ascent (the paper).
    Sga,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// Everything beyond the paper's plain ascent. `Style::simonyan()` is the paper.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    pub param: Param,
    pub optimizer: Optimizer,
    /// Reflection padding (pixels) around the image before the transforms.
    pub pad: i64,
    /// Random translation up to ± this many pixels.
    pub jitter: i64,
    /// Scale factors, one drawn at random per step.
    pub scales: Vec<f64>,
    /// Random rotation up to ± this many degrees.
    pub rotate: f64,
    /// Gaussian blur of the image every K steps (0: never). Pixel parameterisation only.
    pub blur_every: u32,
    pub blur_sigma: f64,
    /// Zero the pixels whose colour norm is below this percentile (0: off). Pixel only.
    pub clip_percentile: f64,
    /// Weight of the total-variation penalty Σ (Δx)² + (Δy)².
    pub tv: f64,
}

impl Style {
    /// The paper: pixels, plain ascent, no transforms, no priors.
    pub fn simonyan() -> Style {
        Style {
            param: Param::Pixel,
            optimizer: Optimizer::Sga,
            pad: 0,
            jitter: 0,
            scales: vec![1.0],
            rotate: 0.0,
            blur_every: 0,
            blur_sigma: 0.5,
            clip_percentile: 0.0,
            tv: 0.0,
        }
    }

    /// The Lucid recipe: Fourier colour-decorrelated parameterisation, Adam,
    /// padding 16, jitter 8, scales 0.9–1.1, rotation ±10°.
    pub fn natural() -> Style {
        Style {
            param: Param::Fourier,
            optimizer: Optimizer::Adam,
            pad: 16,
            jitter: 8,
            scales: (0..11).map(|i| 1.0 + f64::from(i - 5) / 50.0).collect(),
            rotate: 10.0,
            ..Style::simonyan()
        }
    }

    /// Whether this is exactly the paper's procedure (the fast path).
    pub fn is_plain(&self) -> bool {
        *self == Style::simonyan()
            || (self.param == Param::Pixel
                && self.optimizer == Optimizer::Sga
                && !self.transforms()
                && self.blur_every == 0
                && self.clip_percentile == 0.0
                && self.tv == 0.0)
    }

    /// Whether any random transform is on.
    pub fn transforms(&self) -> bool {
        self.pad > 0
            || self.jitter > 0
            || self.rotate > 0.0
            || self.scales.iter().any(|&s| s != 1.0)
    }
}

/// The square root of ImageNet's colour covariance, as Lucid uses it:
/// decorrelated channels in, RGB out.
const COLOUR_SQRT: [[f64; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];
/// Lucid's damping of the irfft output.
const FOURIER_DAMPING: f64 = 4.0;
/// Initial spectrum noise.
const FOURIER_INIT_STD: f64 = 0.01;
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;

/// What is optimised, and how it becomes an image in the model's space.
pub struct Parameterisation {
    kind: Param,
    /// Pixels `[N, C, H, W]` (model space), or the spectrum `[N, C, H, W/2+1, 2]`.
    pub tensor: Tensor,
    /// 1/f scale of each frequency, `[H, W/2+1]` (Fourier only).
    scale: Tensor,
    /// Colour mixing `[C, C]` (Fourier only; identity unless C = 3).
    colour: Tensor,
    /// logit(mean) per channel, `[1, C, 1, 1]`: zero spectrum → the mean image.
    logit_mean: Tensor,
    spec: InputSpec,
}

impl Parameterisation {
    /// The starting point: the zero image (pixels), or a small random spectrum.
    pub fn new(
        kind: Param,
        count: i64,
        spec: &InputSpec,
        device: Device,
    ) -> Result<Parameterisation> {
        let (c, h, w) = (spec.channels, spec.height, spec.width);
        let options = (Kind::Float, device);
        let tensor = match kind {
            Param::Pixel => spec.zeros(count, device)?,
            Param::Fourier => Tensor::f_randn([count, c, h, w / 2 + 1, 2], options)?
                .f_mul_scalar(FOURIER_INIT_STD)?,
        };
        let fy = Tensor::f_fft_fftfreq(h, 1.0, options)?.f_view([-1, 1])?;
        let fx = Tensor::f_fft_rfftfreq(w, 1.0, options)?.f_view([1, -1])?;
        let scale = fx
            .f_mul(&fx)?
            .f_add(&fy.f_mul(&fy)?)?
            .f_sqrt()?
            .f_clamp_min(1.0 / h.max(w) as f64)?
            .f_reciprocal()?;
        let colour = if c == 3 {
            let matrix = Tensor::f_from_slice(&COLOUR_SQRT.concat())?
                .f_view([3, 3])?
                .f_to_kind(Kind::Float)?;
            let largest_column = matrix
                .f_square()?
                .f_sum_dim_intlist([0].as_slice(), false, Kind::Float)?
                .f_sqrt()?
                .f_max()?;
            matrix.f_div(&largest_column)?.f_to_device(device)?
        } else {
            Tensor::f_eye(c, options)?
        };
        let mean = Tensor::f_from_slice(&spec.mean)?
            .f_to_kind(Kind::Float)?
            .f_to_device(device)?
            .f_clamp(1e-3, 1.0 - 1e-3)?;
        let odds = mean.f_div(&mean.f_ones_like()?.f_sub(&mean)?)?;
        let logit_mean = odds.f_log()?.f_view([1, c, 1, 1])?;
        Ok(Parameterisation {
            kind,
            tensor: tensor.f_set_requires_grad(true)?,
            scale,
            colour,
            logit_mean,
            spec: spec.clone(),
        })
    }

    /// The current images `[N, C, H, W]` in the model's zero-centred space.
    pub fn images(&self) -> Result<Tensor> {
        match self.kind {
            Param::Pixel => Ok(self.tensor.shallow_clone()),
            Param::Fourier => {
                let coefficients = self
                    .tensor
                    .f_view_as_complex()?
                    .f_mul(&self.scale.f_to_kind(Kind::ComplexFloat)?)?;
                let decorrelated = coefficients
                    .f_fft_irfft2(
                        Some([self.spec.height, self.spec.width].as_slice()),
                        [-2, -1],
                        "ortho",
                    )?
                    .f_div_scalar(FOURIER_DAMPING)?;
                let rgb = Tensor::f_einsum(
                    "nchw,dc->ndhw",
                    &[&decorrelated, &self.colour],
                    None::<&[i64]>,
                )?;
                let x01 = rgb.f_add(&self.logit_mean)?.f_sigmoid()?;
                self.spec.normalise(&x01)
            }
        }
    }

    pub fn kind(&self) -> Param {
        self.kind
    }
}

/// A small deterministic generator (SplitMix64) for the random transforms, so
/// that a seed reproduces a run exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [-limit, limit].
    pub fn symmetric(&mut self, limit: i64) -> i64 {
        if limit <= 0 {
            return 0;
        }
        (self.next_u64() % (2 * limit as u64 + 1)) as i64 - limit
    }
}

/// Pad, then sample the image through one random scale, rotation and
/// translation (the same for the whole batch), back at the input size.
pub fn random_transform(images: &Tensor, style: &Style, rng: &mut Rng) -> Result<Tensor> {
    if !style.transforms() {
        return Ok(images.shallow_clone());
    }
    let size = images.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let pad = style.pad.min(h - 1).min(w - 1);
    let padded = if pad > 0 {
        images.f_pad([pad, pad, pad, pad], "reflect", None)?
    } else {
        images.shallow_clone()
    };
    let scale = style.scales[(rng.next_u64() % style.scales.len() as u64) as usize];
    let angle = (rng.unit() * 2.0 - 1.0) * style.rotate * PI / 180.0;
    let (tx, ty) = (rng.symmetric(style.jitter) as f64, rng.symmetric(style.jitter) as f64);
    let (ph, pw) = ((h + 2 * pad) as f64, (w + 2 * pad) as f64);
    let (cos, sin) = (angle.cos() / scale, angle.sin() / scale);
    // Output pixel → padded-image coordinates, in grid_sample's [-1, 1] units.
    let theta = [
        cos * w as f64 / pw,
        -sin * h as f64 / pw,
        2.0 * tx / pw,
        sin * w as f64 / ph,
        cos * h as f64 / ph,
        2.0 * ty / ph,
    ];
    let theta = Tensor::f_from_slice(&theta)?
        .f_to_kind(images.kind())?
        .f_to_device(images.device())?
        .f_view([1, 2, 3])?
        .f_expand([n, 2, 3], false)?;
    let grid = Tensor::f_affine_grid_generator(&theta, [n, c, h, w], false)?;
    const BILINEAR: i64 = 0;
    const REFLECTION: i64 = 2;
    Ok(padded.f_grid_sampler(&grid, BILINEAR, REFLECTION, false)?)
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

/// Adam's running moments for one tensor.
pub struct Adam {
    first: Tensor,
    second: Tensor,
    steps: i32,
}

impl Adam {
    pub fn new(like: &Tensor) -> Result<Adam> {
        Ok(Adam { first: like.f_zeros_like()?, second: like.f_zeros_like()?, steps: 0 })
    }

    /// The ascent step for `gradient` (to be added to the parameter).
    pub fn step(&mut self, gradient: &Tensor, learning_rate: f64) -> Result<Tensor> {
        self.steps += 1;
        self.first = self
            .first
            .f_mul_scalar(ADAM_BETA1)?
            .f_add(&gradient.f_mul_scalar(1.0 - ADAM_BETA1)?)?;
        self.second = self
            .second
            .f_mul_scalar(ADAM_BETA2)?
            .f_add(&gradient.f_square()?.f_mul_scalar(1.0 - ADAM_BETA2)?)?;
        let first = self.first.f_div_scalar(1.0 - ADAM_BETA1.powi(self.steps))?;
        let second = self.second.f_div_scalar(1.0 - ADAM_BETA2.powi(self.steps))?;
        Ok(first
            .f_div(&second.f_sqrt()?.f_add_scalar(ADAM_EPSILON)?)?
            .f_mul_scalar(learning_rate)?)
    }
}

/// Check a style against the parameterisation it will run with.
pub fn validate(style: &Style) -> Result<()> {
    if style.param == Param::Fourier && (style.blur_every > 0 || style.clip_percentile > 0.0) {
        bail!("--blur-every and --clip-percentile act on pixels: use them with --param pixel");
    }
    if style.scales.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        bail!("--scale values must be positive, got {:?}", style.scales);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InputSpec {
        InputSpec {
            channels: 3,
            height: 16,
            width: 12,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    #[test]
    fn zero_spectrum_is_the_mean_image() {
        let mut param = Parameterisation::new(Param::Fourier, 2, &spec(), Device::Cpu).unwrap();
        let _ = tch::no_grad(|| param.tensor.zero_());
        let images = param.images().unwrap();
        assert_eq!(images.size(), vec![2, 3, 16, 12]);
        let x01 = spec().denormalise(&images).unwrap();
        for (c, mean) in spec().mean.iter().enumerate() {
            let channel = x01.select(1, c as i64);
            let error = f64::try_from((channel - *mean).abs().max()).unwrap();
            assert!(error < 1e-3, "channel {c}: off the mean by {error}");
        }
    }

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
    fn jitter_with_a_fixed_seed_is_reproducible() {
        tch::manual_seed(2);
        let images = Tensor::randn([2, 3, 20, 20], (Kind::Float, Device::Cpu));
        let style = Style::natural();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..3).map(|_| random_transform(&images, &style, &mut rng).unwrap()).collect::<Vec<_>>()
        };
        let (a, b, c) = (run(7), run(7), run(8));
        for (x, y) in a.iter().zip(&b) {
            assert!(x.equal(y), "same seed, same transforms");
        }
        assert!(a.iter().zip(&c).any(|(x, y)| !x.equal(y)), "another seed, other transforms");
        assert_eq!(a[0].size(), vec![2, 3, 20, 20]);
    }

    #[test]
    fn identity_transform_when_all_off() {
        let images = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let out = random_transform(&images, &Style::simonyan(), &mut Rng::new(0)).unwrap();
        assert!(out.equal(&images));
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
    fn adam_first_step_is_lr_times_sign() {
        let mut adam = Adam::new(&Tensor::zeros([3], (Kind::Float, Device::Cpu))).unwrap();
        let step = adam.step(&Tensor::from_slice(&[2.0f32, -0.5, 1e-3]), 0.1).unwrap();
        let step = Vec::<f64>::try_from(step.to_kind(Kind::Double)).unwrap();
        for (s, expected) in step.iter().zip([0.1, -0.1, 0.1]) {
            assert!((s - expected).abs() < 1e-4, "{s} vs {expected}");
        }
    }
}
