//! Beyond the paper: parameterisations, transformation robustness, image
//! priors and optimisers that make class models look like pictures rather than
//! adversarial texture.
//!
//! - Fourier parameterisation in a decorrelated colour space (Olah et al.,
//!   "Feature Visualization", Distill 2017), with a tunable spectrum decay;
//! - MaCo (Fel et al. 2023, arXiv 2306.06805): only the Fourier phase is
//!   optimised, the magnitude is that of natural photos; the image is a canvas
//!   larger than the model's input, seen through random crops;
//! - random views before every forward pass: padding, jitter, scaling and
//!   rotation (Olah et al.) or crops (MaCo), K of them per step, batched
//!   (expectation over transformations);
//! - Gaussian blur every K steps and clipping of low-norm pixels (Yosinski et
//!   al. 2015, "Understanding Neural Networks Through Deep Visualization");
//! - total variation (Mahendran & Vedaldi 2015);
//! - Adam.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::files;
use crate::input::InputSpec;

/// `--param`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Param {
    /// Optimise the pixels of the zero-centred image (the paper).
    Pixel,
    /// Optimise a 1/f-scaled spectrum in decorrelated colour, squashed into
    /// [0,1] around the model's mean.
    Fourier,
    /// Optimise only the Fourier phase; the magnitude is natural photos' (MaCo).
    Maco,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Optimizer {
    /// Plain gradient ascent (the paper).
    Sga,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// `--colour`: the space the Fourier and MaCo parameterisations work in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Colour {
    /// ImageNet's colour covariance whitened out (Olah et al.).
    Decorrelated,
    /// Plain RGB.
    Rgb,
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
    /// Scale factors, one drawn at random per view.
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
    /// Colour space of the Fourier and MaCo parameterisations.
    pub colour: Colour,
    /// Fourier: each frequency f is scaled by 1/f^decay (Lucid: 1).
    pub decay: f64,
    /// Random views per image per step, batched; the objective is their mean.
    pub views: u32,
    /// The optimised canvas's side as a multiple of the model's input side.
    pub canvas: f64,
    /// MaCo crops: each view is a square box of this fraction (low, high) of
    /// the canvas side, placed around the centre, resized to the input.
    pub crop_box: Option<(f64, f64)>,
    /// σ of the Gaussian noise, and half-width of the uniform noise, added to
    /// each view (in the model's zero-centred units).
    pub view_noise: f64,
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
            colour: Colour::Decorrelated,
            decay: 1.0,
            views: 1,
            canvas: 1.0,
            crop_box: None,
            view_noise: 0.0,
        }
    }

    /// The Lucid recipe (Fourier colour-decorrelated parameterisation, Adam)
    /// with stronger transformation robustness than Lucid's (jitter 8, scales
    /// 0.9–1.1, ±10°), measured on `make bench-quality`: padding 16, jitter
    /// ±16 (both for a 224-pixel input: `scaled_pixels`), scales 0.8–1.2,
    /// rotation ±20°.
    pub fn natural() -> Style {
        Style {
            param: Param::Fourier,
            optimizer: Optimizer::Adam,
            pad: 16,
            jitter: 16,
            scales: scale_range(0.8, 1.2),
            rotate: 20.0,
            ..Style::simonyan()
        }
    }

    /// MaCo: phase only, natural magnitude, a canvas seen through random
    /// crops of 20–50% of its side with a little noise, Adam. The canvas is
    /// sized so that a crop of the mean size is the input's size.
    pub fn maco() -> Style {
        Style {
            param: Param::Maco,
            optimizer: Optimizer::Adam,
            canvas: 1.0 / 0.35,
            crop_box: Some((0.2, 0.5)),
            views: 4,
            view_noise: 0.05,
            ..Style::simonyan()
        }
    }

    /// Whether this is exactly the paper's procedure (the fast path).
    pub fn is_plain(&self) -> bool {
        self.param == Param::Pixel
            && self.optimizer == Optimizer::Sga
            && !self.transforms()
            && self.blur_every == 0
            && self.clip_percentile == 0.0
            && self.tv == 0.0
            && self.canvas == 1.0
            && self.view_noise == 0.0
    }

    /// Whether any random transform is on.
    pub fn transforms(&self) -> bool {
        self.pad > 0
            || self.jitter > 0
            || self.rotate > 0.0
            || self.scales.iter().any(|&s| s != 1.0)
            || self.crop_box.is_some()
    }
}

/// A named set of defaults: the style and the ascent's step count, learning
/// rate and L2 weight. Explicit flags override each.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub style: Style,
    pub iters: u32,
    pub learning_rate: f64,
    pub l2_weight: f64,
    /// Views per step on CUDA, where they are cheap (the style's are the CPU's).
    pub cuda_views: u32,
}

/// `--preset`: a named set of defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetName {
    /// The paper's plain ascent on pixels.
    Simonyan,
    /// The Lucid recipe: a decorrelated Fourier image under random transforms, with Adam.
    Natural,
    /// MaCo: the Fourier phase only, with natural photos' magnitude, seen through crops.
    Maco,
}

/// The preset's settings: `simonyan` (the paper), `natural`, `maco`.
pub fn preset(name: PresetName) -> Preset {
    match name {
        PresetName::Simonyan => Preset {
            style: Style::simonyan(),
            iters: 150,
            learning_rate: 1.0,
            l2_weight: 1e-4,
            cuda_views: 1,
        },
        PresetName::Natural => Preset {
            style: Style::natural(),
            iters: 256,
            learning_rate: 0.05,
            l2_weight: 0.0,
            cuda_views: 1,
        },
        // The phase lives in radians: lr 1 overshoots (21/25 top-1 on Lite1,
        // mean p 0.52), 3 diverges, 0.3 gives 24/25 and 0.86 (README). 160
        // steps rather than 128: on 25 classes outside the benchmark's, Lite1
        // recognised 24 rather than 21 (mean p 0.81 against 0.73).
        PresetName::Maco => Preset {
            style: Style::maco(),
            iters: 160,
            learning_rate: 0.3,
            l2_weight: 0.0,
            cuda_views: 16,
        },
    }
}

/// The input side (pixels) for which the presets' padding and jitter are
/// given; on another input they scale with its shorter side.
pub const TRANSFORM_REFERENCE_SIDE: i64 = 224;

/// A preset's `pixels` of padding or jitter for an input whose shorter side
/// is `side`: in proportion to `TRANSFORM_REFERENCE_SIDE`, at least 1 where
/// the preset has any. The natural preset's 16 px on a 28-pixel digit moved it
/// off its own frame: `digits_b` recognised 3 of the 10 digit models made that
/// way, 10 of 10 with the scaled 2 px (README).
pub fn scaled_pixels(pixels: i64, side: i64) -> i64 {
    if pixels == 0 {
        return 0;
    }
    ((pixels as f64 * side as f64 / TRANSFORM_REFERENCE_SIDE as f64).round() as i64).max(1)
}

/// Evenly spaced scale factors from `low` to `high` (Lucid draws from 11 of them
/// over 0.9–1.1): one every 0.02.
pub fn scale_range(low: f64, high: f64) -> Vec<f64> {
    let steps = (((high - low) / SCALE_STEP).round() as usize).max(1);
    (0..=steps).map(|i| low + (high - low) * i as f64 / steps as f64).collect()
}

const SCALE_STEP: f64 = 0.02;

/// The square root of ImageNet's colour covariance, as Lucid uses it:
/// decorrelated channels in, RGB out.
const COLOUR_SQRT: [[f64; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];
/// Lucid's damping of the irfft output.
const FOURIER_DAMPING: f64 = 4.0;
/// Initial spectrum noise.
const FOURIER_INIT_STD: f64 = 0.01;
/// MaCo images are squashed into [0,1] by a sigmoid around the mean; with this
/// gain a small deviation d comes out as about d (sigmoid′(0) = 1/4).
const MACO_GAIN: f64 = 4.0;
/// MaCo crop centres: Gaussian around the canvas centre, σ this fraction of its side.
const CROP_CENTRE_SPREAD: f64 = 0.15;
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;

/// The average Fourier magnitude of natural photos (`weights/maco_spectrum.py`),
/// per decorrelated colour channel, `[3, S, S/2 + 1]` in rfft2 layout, and
/// the photos' standard deviation per channel.
pub struct Magnitude {
    values: Tensor,
    std: Vec<f64>,
}

/// Where `make weights` puts the magnitude spectrum.
pub const DEFAULT_MAGNITUDE: &str = "weights/maco_magnitude.npy";

impl Magnitude {
    /// Read and check `path` (a .npy) and its .json beside it.
    pub fn load(path: &Path) -> Result<Magnitude> {
        let shown = path.display();
        let advice = "run `make weights` (weights/maco_spectrum.py) or pass --magnitude";
        if std::fs::symlink_metadata(path).is_err() {
            bail!("MaCo's magnitude spectrum {shown} not found: {advice}");
        }
        files::check_input_file(path, "MaCo's magnitude spectrum")?;
        let values = Tensor::read_npy(path)
            .map_err(|err| anyhow::anyhow!("{}", err.to_string().lines().next().unwrap_or("")))
            .with_context(|| format!("MaCo's magnitude spectrum {shown} is corrupt: {advice}"))?
            .f_to_kind(Kind::Float)?;
        let size = values.size();
        let [3, rows, columns] = size[..] else {
            bail!("MaCo's magnitude spectrum {shown} has shape {size:?}, expected [3, S, S/2+1]: {advice}");
        };
        if rows < 8 || columns != rows / 2 + 1 {
            bail!("MaCo's magnitude spectrum {shown} has shape {size:?}, expected [3, S, S/2+1]: {advice}");
        }
        let finite = values.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1;
        let non_negative = f64::try_from(values.f_min()?)? >= 0.0;
        let positive = f64::try_from(values.f_sum(Kind::Double)?)? > 0.0;
        if !(finite && non_negative && positive) {
            bail!("MaCo's magnitude spectrum {shown} must be finite and positive: {advice}");
        }
        let sidecar = path.with_extension("json");
        let text = files::read_text(&sidecar, "MaCo's magnitude description")
            .with_context(|| advice.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON: {advice}", sidecar.display()))?;
        let std: Vec<f64> = json["std"]
            .as_array()
            .map(|v| v.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        if std.len() != 3 || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            bail!("{} must give \"std\": three positive numbers: {advice}", sidecar.display());
        }
        Ok(Magnitude { values, std })
    }

    /// The magnitude on an `h × w` canvas's rfft2 grid, `[3, h, w/2+1]`:
    /// each frequency takes the stored value nearest it in cycles per pixel,
    /// and the whole is scaled so that an image of any phase has the photos'
    /// standard deviation per channel (Parseval: the magnitude fixes it).
    fn on_grid(&self, h: i64, w: i64, device: Device) -> Result<Tensor> {
        let size = self.values.size();
        let (rows, columns) = (size[1], size[2]);
        let row_index: Vec<i64> = (0..h)
            .map(|i| {
                let f = if i <= h / 2 { i as f64 / h as f64 } else { (i - h) as f64 / h as f64 };
                ((f * rows as f64).round() as i64).rem_euclid(rows)
            })
            .collect();
        let column_index: Vec<i64> = (0..w / 2 + 1)
            .map(|j| ((j as f64 / w as f64 * rows as f64).round() as i64).min(columns - 1))
            .collect();
        let grid = self
            .values
            .f_index_select(1, &Tensor::f_from_slice(&row_index)?)?
            .f_index_select(2, &Tensor::f_from_slice(&column_index)?)?;
        // Energy of a real image from its half spectrum: the columns other
        // than 0 (and w/2 for even w) stand for two coefficients each.
        let mut weights = vec![2.0f32; (w / 2 + 1) as usize];
        weights[0] = 1.0;
        if w % 2 == 0 {
            weights[(w / 2) as usize] = 1.0;
        }
        let weights = Tensor::f_from_slice(&weights)?.f_view([1, 1, -1])?;
        let energy = grid.f_square()?.f_mul(&weights)?.f_sum_dim_intlist(
            [1, 2].as_slice(),
            false,
            Kind::Float,
        )?;
        let std_now = energy.f_div_scalar((h * w) as f64)?.f_sqrt()?;
        let target = Tensor::f_from_slice(&self.std)?.f_to_kind(Kind::Float)?;
        let gain = target.f_div(&std_now.f_clamp_min(1e-12)?)?.f_view([3, 1, 1])?;
        Ok(grid.f_mul(&gain)?.f_to_device(device)?)
    }
}

/// What is optimised, and how it becomes an image in the model's space.
pub struct Parameterisation {
    kind: Param,
    /// Pixels `[N, C, H, W]` (model space), the spectrum `[N, C, H, W/2+1, 2]`
    /// (Fourier), or the phase `[N, C, H, W/2+1]` (MaCo), over the canvas.
    pub tensor: Tensor,
    /// Fourier: the 1/f^decay scale of each frequency, `[H, W/2+1]`; MaCo:
    /// the fixed magnitude `[C, H, W/2+1]`.
    scale: Tensor,
    /// Colour mixing `[C, C]` (identity unless C = 3 and decorrelated).
    colour: Tensor,
    /// logit(mean) per channel, `[1, C, 1, 1]`: a zero spectrum → the mean image.
    logit_mean: Tensor,
    /// The model's input spec with the canvas's size.
    spec: InputSpec,
}

impl Parameterisation {
    /// The starting point over a canvas of `style.canvas` times the input: the
    /// zero image (pixels), a small random spectrum (Fourier), or a uniformly
    /// random phase (MaCo, which needs `magnitude`).
    pub fn new(
        style: &Style,
        count: i64,
        input: &InputSpec,
        magnitude: Option<&Magnitude>,
        device: Device,
    ) -> Result<Parameterisation> {
        let spec = canvas_spec(input, style.canvas);
        let (c, h, w) = (spec.channels, spec.height, spec.width);
        let options = (Kind::Float, device);
        let (tensor, scale) = match style.param {
            Param::Pixel => (spec.zeros(count, device)?, Tensor::f_zeros([1], options)?),
            Param::Fourier => {
                let spectrum = Tensor::f_randn([count, c, h, w / 2 + 1, 2], options)?
                    .f_mul_scalar(FOURIER_INIT_STD)?;
                (spectrum, frequency_scale(h, w, style.decay, device)?)
            }
            Param::Maco => {
                if c != 3 {
                    bail!("--param maco needs a 3-channel model; this one takes {c} channels");
                }
                let magnitude = magnitude.context("--param maco needs the magnitude spectrum")?;
                let phase = Tensor::f_rand([count, c, h, w / 2 + 1], options)?
                    .f_mul_scalar(2.0 * PI)?
                    .f_sub_scalar(PI)?;
                (phase, magnitude.on_grid(h, w, device)?)
            }
        };
        let colour = if c == 3 && style.colour == Colour::Decorrelated {
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
            kind: style.param,
            tensor: tensor.f_set_requires_grad(true)?,
            scale,
            colour,
            logit_mean,
            spec,
        })
    }

    /// The current images `[N, C, H, W]` over the canvas, in the model's zero-centred space.
    pub fn images(&self) -> Result<Tensor> {
        if self.kind == Param::Pixel {
            return Ok(self.tensor.shallow_clone());
        }
        let rgb =
            Tensor::f_einsum("nchw,dc->ndhw", &[&self.signal()?, &self.colour], None::<&[i64]>)?;
        let x01 = rgb.f_add(&self.logit_mean)?.f_sigmoid()?;
        self.spec.normalise(&x01)
    }

    /// Fourier and MaCo: the image before colour mixing and squashing, in the
    /// (decorrelated) colour space: the inverse FFT of the parameterised spectrum.
    fn signal(&self) -> Result<Tensor> {
        let size = [self.spec.height, self.spec.width];
        let (coefficients, gain) = match self.kind {
            Param::Pixel => bail!("pixels have no spectrum"),
            Param::Fourier => (
                self.tensor
                    .f_view_as_complex()?
                    .f_mul(&self.scale.f_to_kind(Kind::ComplexFloat)?)?,
                1.0 / FOURIER_DAMPING,
            ),
            Param::Maco => {
                let phase = Tensor::f_complex(&self.tensor.f_cos()?, &self.tensor.f_sin()?)?;
                (phase.f_mul(&self.scale.f_to_kind(Kind::ComplexFloat)?)?, MACO_GAIN)
            }
        };
        Ok(coefficients
            .f_fft_irfft2(Some(size.as_slice()), [-2, -1], "ortho")?
            .f_mul_scalar(gain)?)
    }

    pub fn kind(&self) -> Param {
        self.kind
    }
}

/// The input spec with the canvas's size: `canvas` times the input side.
pub fn canvas_spec(input: &InputSpec, canvas: f64) -> InputSpec {
    let side = |n: i64| ((n as f64 * canvas).round() as i64).max(1);
    InputSpec { height: side(input.height), width: side(input.width), ..input.clone() }
}

/// 1/f^decay for each frequency of an `h × w` rfft2 grid, `[h, w/2+1]`.
fn frequency_scale(h: i64, w: i64, decay: f64, device: Device) -> Result<Tensor> {
    let options = (Kind::Float, device);
    let fy = Tensor::f_fft_fftfreq(h, 1.0, options)?.f_view([-1, 1])?;
    let fx = Tensor::f_fft_rfftfreq(w, 1.0, options)?.f_view([1, -1])?;
    let radius =
        fx.f_mul(&fx)?.f_add(&fy.f_mul(&fy)?)?.f_sqrt()?.f_clamp_min(1.0 / h.max(w) as f64)?;
    if decay == 1.0 {
        Ok(radius.f_reciprocal()?)
    } else {
        Ok(radius.f_pow_tensor_scalar(-decay)?)
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

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * self.unit()).cos()
    }
}

/// One random view of the canvas: the box it covers (in canvas pixels), its
/// rotation (radians) and its centre's offset from the canvas centre (pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub box_width: f64,
    pub box_height: f64,
    pub angle: f64,
    pub shift_x: f64,
    pub shift_y: f64,
}

impl View {
    /// The whole input-sized canvas, untransformed.
    pub fn identity(input: &InputSpec) -> View {
        View {
            box_width: input.width as f64,
            box_height: input.height as f64,
            angle: 0.0,
            shift_x: 0.0,
            shift_y: 0.0,
        }
    }
}

/// Draw `style.views` random views of a canvas for a model taking `input`.
/// Lucid's transforms: a scale s (the box is the input size / s), a rotation
/// and a jitter; MaCo's crops: a square box of a random fraction of the canvas
/// side, its centre normal around the canvas centre, kept inside the canvas.
pub fn draw_views(style: &Style, input: &InputSpec, rng: &mut Rng) -> Vec<View> {
    let canvas = canvas_spec(input, style.canvas);
    let (cw, ch) = (canvas.width as f64, canvas.height as f64);
    (0..style.views.max(1))
        .map(|_| match style.crop_box {
            Some((low, high)) => {
                let fraction = low + (high - low) * rng.unit();
                let side = fraction * cw.min(ch);
                let room_x = ((cw - side) / 2.0).max(0.0);
                let room_y = ((ch - side) / 2.0).max(0.0);
                let spread = CROP_CENTRE_SPREAD * cw.min(ch);
                View {
                    box_width: side,
                    box_height: side,
                    angle: 0.0,
                    shift_x: (rng.normal() * spread).clamp(-room_x, room_x),
                    shift_y: (rng.normal() * spread).clamp(-room_y, room_y),
                }
            }
            None => {
                let scale = style.scales[(rng.next_u64() % style.scales.len() as u64) as usize];
                let angle = (rng.unit() * 2.0 - 1.0) * style.rotate * PI / 180.0;
                let (tx, ty) =
                    (rng.symmetric(style.jitter) as f64, rng.symmetric(style.jitter) as f64);
                View {
                    box_width: input.width as f64 / scale,
                    box_height: input.height as f64 / scale,
                    angle,
                    shift_x: tx,
                    shift_y: ty,
                }
            }
        })
        .collect()
}

/// The views of a batch of canvases `[N, C, Hc, Wc]`, each resampled to the
/// input size: `[K·N, C, H, W]`, view-major (view k of image i is row k·N + i).
/// The canvas is reflection-padded by `style.pad` first; `style.view_noise`
/// adds Gaussian and uniform noise to every view.
pub fn apply_views(
    images: &Tensor,
    style: &Style,
    views: &[View],
    input: &InputSpec,
) -> Result<Tensor> {
    let size = images.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let identity = views.len() == 1
        && views[0] == View::identity(input)
        && style.pad == 0
        && (h, w) == (input.height, input.width);
    let seen = if identity {
        images.shallow_clone()
    } else {
        let pad = style.pad.min(h - 1).min(w - 1).max(0);
        let padded = if pad > 0 {
            images.f_pad([pad, pad, pad, pad], "reflect", None)?
        } else {
            images.shallow_clone()
        };
        let (ph, pw) = ((h + 2 * pad) as f64, (w + 2 * pad) as f64);
        let mut thetas = Vec::with_capacity(views.len() * 6);
        for view in views {
            let (cos, sin) = (view.angle.cos(), view.angle.sin());
            // Output pixel → padded-canvas coordinates, in grid_sample's [-1, 1] units.
            thetas.extend_from_slice(&[
                cos * view.box_width / pw,
                -sin * view.box_height / pw,
                2.0 * view.shift_x / pw,
                sin * view.box_width / ph,
                cos * view.box_height / ph,
                2.0 * view.shift_y / ph,
            ]);
        }
        let k = views.len() as i64;
        let theta = Tensor::f_from_slice(&thetas)?
            .f_to_kind(images.kind())?
            .f_to_device(images.device())?
            .f_view([k, 1, 2, 3])?
            .f_expand([k, n, 2, 3], false)?
            .f_reshape([k * n, 2, 3])?;
        let grid =
            Tensor::f_affine_grid_generator(&theta, [k * n, c, input.height, input.width], false)?;
        let source = if k > 1 { padded.f_repeat([k, 1, 1, 1])? } else { padded };
        const BILINEAR: i64 = 0;
        const REFLECTION: i64 = 2;
        source.f_grid_sampler(&grid, BILINEAR, REFLECTION, false)?
    };
    if style.view_noise > 0.0 {
        let gaussian = seen.f_randn_like()?.f_mul_scalar(style.view_noise)?;
        let uniform = seen
            .f_rand_like()?
            .f_mul_scalar(2.0)?
            .f_sub_scalar(1.0)?
            .f_mul_scalar(style.view_noise)?;
        Ok(seen.f_add(&gaussian)?.f_add(&uniform)?)
    } else {
        Ok(seen)
    }
}

/// What a canvas shows as a class image: with MaCo crops, the view at the
/// canvas centre at the crops' mean size, resampled to the input (what the
/// network looked at, on average); otherwise the canvas itself. `images` may
/// have any channel count (an attribution map has one).
pub fn central_view(images: &Tensor, style: &Style, input: &InputSpec) -> Result<Tensor> {
    let Some((low, high)) = style.crop_box else { return Ok(images.shallow_clone()) };
    let size = images.size();
    let side = (low + high) / 2.0 * size[2].min(size[3]) as f64;
    let view = View { box_width: side, box_height: side, angle: 0.0, shift_x: 0.0, shift_y: 0.0 };
    let plain = Style { pad: 0, view_noise: 0.0, ..style.clone() };
    apply_views(images, &plain, &[view], input)
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
    if style.param != Param::Pixel && (style.blur_every > 0 || style.clip_percentile > 0.0) {
        bail!("--blur-every and --clip-percentile act on pixels: use them with --param pixel");
    }
    if style.scales.is_empty() || style.scales.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        bail!("--scale values must be positive, got {:?}", style.scales);
    }
    if let Some((low, high)) = style.crop_box {
        if !(low > 0.0 && low <= high && high <= 1.0) {
            bail!("--crop-box must be 0 < low ≤ high ≤ 1 (fractions of the canvas side), got {low}..{high}");
        }
    }
    if !(style.canvas >= 1.0 && style.canvas <= 8.0) {
        bail!("--canvas must be 1 to 8 times the input side, got {}", style.canvas);
    }
    Ok(())
}

/// The magnitude file to use, if the style needs one.
pub fn magnitude_for(style: &Style, path: &Path) -> Result<Option<Magnitude>> {
    if style.param == Param::Maco {
        Ok(Some(Magnitude::load(path)?))
    } else {
        Ok(None)
    }
}

/// `--magnitude`'s default as a path.
pub fn default_magnitude() -> PathBuf {
    PathBuf::from(DEFAULT_MAGNITUDE)
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
    fn preset_pixels_scale_with_the_input_side() {
        assert_eq!(scaled_pixels(16, 224), 16);
        assert_eq!(scaled_pixels(16, 28), 2);
        assert_eq!(scaled_pixels(16, 448), 32);
        assert_eq!(scaled_pixels(8, 8), 1, "at least one pixel");
        assert_eq!(scaled_pixels(0, 28), 0);
    }

    #[test]
    fn zero_spectrum_is_the_mean_image() {
        let style = Style::natural();
        let mut param = Parameterisation::new(&style, 2, &spec(), None, Device::Cpu).unwrap();
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
    fn steeper_decay_damps_high_frequencies() {
        let lucid = frequency_scale(16, 16, 1.0, Device::Cpu).unwrap();
        let steep = frequency_scale(16, 16, 2.0, Device::Cpu).unwrap();
        let high = |t: &Tensor| t.double_value(&[8, 8]);
        let low = |t: &Tensor| t.double_value(&[1, 0]);
        assert!(high(&steep) / low(&steep) < high(&lucid) / low(&lucid));
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
    fn views_with_a_fixed_seed_are_reproducible() {
        tch::manual_seed(2);
        let images = Tensor::randn([2, 3, 16, 12], (Kind::Float, Device::Cpu));
        let style = Style { views: 3, ..Style::natural() };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let views = draw_views(&style, &spec(), &mut rng);
            apply_views(&images, &style, &views, &spec()).unwrap()
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert!(a.equal(&b), "same seed, same views");
        assert!(!a.equal(&c), "another seed, other views");
        assert_eq!(a.size(), vec![6, 3, 16, 12]);
    }

    #[test]
    fn identity_view_when_all_off() {
        let images = Tensor::randn([1, 3, 16, 12], (Kind::Float, Device::Cpu));
        let style = Style::simonyan();
        let views = draw_views(&style, &spec(), &mut Rng::new(0));
        assert_eq!(views, vec![View::identity(&spec())]);
        assert!(apply_views(&images, &style, &views, &spec()).unwrap().equal(&images));
    }

    #[test]
    fn crops_fall_inside_the_canvas() {
        let style = Style { views: 64, ..Style::maco() };
        let canvas = canvas_spec(&spec(), style.canvas);
        assert_eq!((canvas.height, canvas.width), (46, 34), "canvas = input / 0.35");
        let (cw, ch) = (canvas.width as f64, canvas.height as f64);
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            for view in draw_views(&style, &spec(), &mut rng) {
                let side = view.box_width;
                assert!(side >= 0.2 * cw.min(ch) - 1e-9 && side <= 0.5 * cw.min(ch) + 1e-9);
                assert!(view.shift_x.abs() + side / 2.0 <= cw / 2.0 + 1e-9, "{view:?}");
                assert!(view.shift_y.abs() + side / 2.0 <= ch / 2.0 + 1e-9, "{view:?}");
            }
        }
    }

    #[test]
    fn a_centred_crop_samples_the_canvas_centre() {
        // A canvas whose pixel values are their column index: a centred crop of
        // half the side, resampled to the input, spans the middle columns.
        let input = InputSpec { height: 8, width: 8, ..spec() };
        let style = Style { canvas: 2.0, crop_box: Some((0.5, 0.5)), ..Style::simonyan() };
        let columns = Tensor::arange(16, (Kind::Float, Device::Cpu)).view([1, 1, 1, 16]);
        let canvas = columns.expand([1, 3, 16, 16], false).contiguous();
        let view = View { box_width: 8.0, box_height: 8.0, angle: 0.0, shift_x: 0.0, shift_y: 0.0 };
        let seen = apply_views(&canvas, &style, &[view], &input).unwrap();
        let row = Vec::<f64>::try_from(seen.get(0).get(0).get(3).to_kind(Kind::Double)).unwrap();
        assert_eq!(
            row.iter().map(|v| v.round() as i64).collect::<Vec<_>>(),
            (4..12).collect::<Vec<_>>()
        );
    }

    #[test]
    fn maco_keeps_the_magnitude_fixed_while_the_phase_moves() {
        tch::manual_seed(5);
        let magnitude = Magnitude {
            values: Tensor::rand([3, 32, 17], (Kind::Float, Device::Cpu)) + 0.1,
            std: vec![0.3, 0.4, 0.3],
        };
        let input = InputSpec { height: 10, width: 14, ..spec() };
        let style = Style::maco();
        let mut param =
            Parameterisation::new(&style, 2, &input, Some(&magnitude), Device::Cpu).unwrap();
        let fixed = param.scale.shallow_clone();
        let start = param.tensor.detach().copy();
        let weights = Tensor::randn(param.images().unwrap().size(), (Kind::Float, Device::Cpu));
        let mut adam = Adam::new(&param.tensor).unwrap();
        for _ in 0..10 {
            let objective = (param.images().unwrap() * &weights).sum(Kind::Float);
            let gradient = Tensor::run_backward(&[&objective], &[&param.tensor], false, false);
            let step = adam.step(&gradient[0], 0.5).unwrap();
            let _ = tch::no_grad(|| param.tensor.f_add_(&step).unwrap());
        }
        let moved = f64::try_from((param.tensor.detach() - &start).abs().max()).unwrap();
        assert!(moved > 0.1, "the phase moved by only {moved}");
        // |FFT| of the decorrelated signal is the fixed magnitude (times the gain),
        // away from the DC and Nyquist columns, which irfft2 makes Hermitian.
        let spectrum = param.signal().unwrap().fft_rfft2(None::<&[i64]>, [-2, -1], "ortho").abs();
        let columns = spectrum.size()[3];
        let inner = |t: &Tensor| t.narrow(-1, 1, columns - 2);
        let expected = inner(&fixed).unsqueeze(0) * MACO_GAIN;
        let error = f64::try_from((inner(&spectrum) - &expected).abs().max()).unwrap();
        let scale = f64::try_from(expected.abs().max()).unwrap();
        assert!(error <= 1e-4 * scale, "magnitude drifted by {error} (scale {scale})");
    }

    #[test]
    fn identical_views_give_the_gradient_of_one() {
        tch::manual_seed(6);
        let input = spec();
        let style = Style { jitter: 3, rotate: 15.0, ..Style::natural() };
        let view = draw_views(&style, &input, &mut Rng::new(9))[0];
        let images = Tensor::randn([2, 3, 16, 12], (Kind::Float, Device::Cpu));
        let weights = Tensor::randn([2, 3, 16, 12], (Kind::Float, Device::Cpu));
        let gradient = |k: usize| {
            let x = images.detach().set_requires_grad(true);
            let seen = apply_views(&x, &style, &vec![view; k], &input).unwrap();
            let per_view = seen.view([k as i64, 2, 3, 16, 12]) * &weights;
            let objective = per_view.square().sum(Kind::Float) / k as f64;
            Tensor::run_backward(&[&objective], &[&x], false, false).remove(0)
        };
        let one = gradient(1);
        for k in [2, 4] {
            let difference = f64::try_from((gradient(k) - &one).abs().max()).unwrap();
            assert!(difference < 1e-5, "{k} identical views: gradient off by {difference}");
        }
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

    #[test]
    fn scale_ranges() {
        let lucid = scale_range(0.9, 1.1);
        assert_eq!(lucid.len(), 11);
        assert!((lucid[0] - 0.9).abs() < 1e-12 && (lucid[10] - 1.1).abs() < 1e-12);
        assert_eq!(scale_range(1.0, 1.0), vec![1.0, 1.0]);
    }
}
