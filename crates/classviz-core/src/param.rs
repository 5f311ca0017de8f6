//! What the ascent optimises, and how it becomes an image in the model's
//! zero-centred space:
//!
//! - pixels (the paper): the image itself;
//! - a Fourier spectrum scaled by 1/f^decay in a decorrelated colour space,
//!   squashed into [0,1] around the model's mean (Olah et al., "Feature
//!   Visualization", Distill 2017);
//! - MaCo (Fel et al. 2023, arXiv 2306.06805): only the Fourier phase, with
//!   the fixed magnitude of natural photos.

use std::f64::consts::PI;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::spectrum::Magnitude;
use classviz_engine::input::Normalise;
use classviz_records::input::InputSpec;

classviz_records::choice! {
    /// `--param`.
    pub enum Param {
        /// Optimise the pixels of the zero-centred image (the paper).
        Pixel = "pixel",
        /// Optimise a 1/f-scaled spectrum in decorrelated colour, squashed into
        /// [0,1] around the model's mean.
        Fourier = "fourier",
        /// Optimise only the Fourier phase; the magnitude is natural photos' (MaCo).
        Maco = "maco",
    }
}

classviz_records::choice! {
    /// `--colour`: the space the Fourier and MaCo parameterisations work in.
    pub enum Colour {
        /// ImageNet's colour covariance whitened out (Olah et al.).
        Decorrelated = "decorrelated",
        /// Plain RGB.
        Rgb = "rgb",
    }
}

/// How a parameterisation is built: its kind and its spectral settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParamSpec {
    pub param: Param,
    /// Colour space of the Fourier and MaCo parameterisations.
    pub colour: Colour,
    /// Fourier: each frequency f is scaled by 1/f^decay (Lucid: 1).
    pub decay: f64,
}

/// Where the parameters start, when not at the parameterisation's own start
/// (the zero image for pixels, a small random spectrum or a random phase).
#[derive(Debug)]
pub enum Start {
    /// The parameterisation's own start.
    Own,
    /// Images `[N, C, H, W]` in the model's space over the canvas: pixels start
    /// at them; Fourier at their spectrum; MaCo at their phase.
    Images(Tensor),
}

/// The optimised tensor and the map from it to images. The tensor is a leaf
/// that requires grad; `images` is differentiable in it.
pub trait Parameterisation {
    fn tensor(&self) -> &Tensor;
    fn tensor_mut(&mut self) -> &mut Tensor;
    /// The current images `[N, C, H, W]` over the canvas, in the model's zero-centred space.
    fn images(&self) -> Result<Tensor>;
    /// Whether the tensor is the images themselves, so that their gradient is
    /// the parameters' gradient without a chain rule.
    fn is_pixels(&self) -> bool {
        false
    }
}

impl ParamSpec {
    /// The parameters for `count` images over `canvas` (the input spec at the
    /// canvas's size), starting at `start`. MaCo needs `magnitude`.
    pub fn build(
        &self,
        count: i64,
        canvas: &InputSpec,
        magnitude: Option<&Magnitude>,
        start: Start,
        device: Device,
    ) -> Result<Box<dyn Parameterisation>> {
        Ok(match self.param {
            Param::Pixel => Box::new(Pixels::new(count, canvas, start, device)?),
            Param::Fourier => Box::new(Spectral::fourier(self, count, canvas, start, device)?),
            Param::Maco => {
                let magnitude = magnitude.context("--param maco needs the magnitude spectrum")?;
                Box::new(Spectral::maco(self, count, canvas, magnitude, start, device)?)
            }
        })
    }
}

/// The paper's parameterisation: the image's pixels.
pub struct Pixels {
    tensor: Tensor,
}

impl Pixels {
    fn new(count: i64, canvas: &InputSpec, start: Start, device: Device) -> Result<Pixels> {
        let mut zeros = canvas.zeros(count, device)?;
        if let Start::Images(images) = start {
            tch::no_grad(|| zeros.f_copy_(&images.f_to_device(device)?))?;
        }
        Ok(Pixels { tensor: zeros.f_set_requires_grad(true)? })
    }
}

impl Parameterisation for Pixels {
    fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    fn tensor_mut(&mut self) -> &mut Tensor {
        &mut self.tensor
    }

    fn images(&self) -> Result<Tensor> {
        Ok(self.tensor.shallow_clone())
    }

    fn is_pixels(&self) -> bool {
        true
    }
}

/// The square root of ImageNet's colour covariance, as Lucid uses it:
/// decorrelated channels in, RGB out.
const COLOUR_SQRT: [[f64; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];
/// Lucid's damping of the irfft output.
const FOURIER_DAMPING: f64 = 4.0;
/// Initial spectrum noise.
const FOURIER_INIT_STD: f64 = 0.01;
/// MaCo images are squashed into [0,1] by a sigmoid around the mean; with this
/// gain a small deviation d comes out as about d (sigmoid′(0) = 1/4).
pub const MACO_GAIN: f64 = 4.0;
/// Values of a start image are kept this far inside (0, 1) before the logit.
const LOGIT_MARGIN: f64 = 1e-3;

/// Fourier and MaCo: an image made from a spectrum in a (decorrelated) colour
/// space, mixed to RGB and squashed into [0,1] around the model's mean.
pub struct Spectral {
    maco: bool,
    /// The spectrum `[N, C, H, W/2+1, 2]` (Fourier) or the phase `[N, C, H, W/2+1]` (MaCo).
    tensor: Tensor,
    /// Fourier: the 1/f^decay scale of each frequency, `[H, W/2+1]`; MaCo:
    /// the fixed magnitude `[C, H, W/2+1]`.
    scale: Tensor,
    /// Colour mixing `[C, C]` (identity unless C = 3 and decorrelated).
    colour: Tensor,
    /// logit(mean) per channel, `[1, C, 1, 1]`: a zero spectrum → the mean image.
    logit_mean: Tensor,
    /// The model's input spec at the canvas's size.
    spec: InputSpec,
}

impl Spectral {
    fn fourier(
        spec: &ParamSpec,
        count: i64,
        canvas: &InputSpec,
        start: Start,
        device: Device,
    ) -> Result<Spectral> {
        let (c, h, w) = (canvas.channels, canvas.height, canvas.width);
        let options = (Kind::Float, device);
        let spectrum = Tensor::f_randn([count, c, h, w / 2 + 1, 2], options)?
            .f_mul_scalar(FOURIER_INIT_STD)?;
        let scale = frequency_scale(h, w, spec.decay, device)?;
        let mut made = Spectral::with(false, spectrum, scale, spec.colour, canvas, device)?;
        if let Start::Images(images) = start {
            let coefficients = made.coefficients_of(&images.f_to_device(device)?)?;
            let spectrum = coefficients
                .f_div(&made.scale.f_clamp_min(1e-12)?.f_to_kind(Kind::ComplexFloat)?)?;
            made.tensor = tch::no_grad(|| spectrum.f_view_as_real())?.f_contiguous()?;
        }
        made.tensor = made.tensor.f_detach()?.f_set_requires_grad(true)?;
        Ok(made)
    }

    fn maco(
        spec: &ParamSpec,
        count: i64,
        canvas: &InputSpec,
        magnitude: &Magnitude,
        start: Start,
        device: Device,
    ) -> Result<Spectral> {
        let (c, h, w) = (canvas.channels, canvas.height, canvas.width);
        if c != 3 {
            bail!("--param maco needs a 3-channel model; this one takes {c} channels");
        }
        let options = (Kind::Float, device);
        let phase = Tensor::f_rand([count, c, h, w / 2 + 1], options)?
            .f_mul_scalar(2.0 * PI)?
            .f_sub_scalar(PI)?;
        let scale = magnitude.on_grid(h, w, device)?;
        let mut made = Spectral::with(true, phase, scale, spec.colour, canvas, device)?;
        if let Start::Images(images) = start {
            let coefficients = made.coefficients_of(&images.f_to_device(device)?)?;
            made.tensor = coefficients.f_angle()?.f_contiguous()?;
        }
        made.tensor = made.tensor.f_detach()?.f_set_requires_grad(true)?;
        Ok(made)
    }

    fn with(
        maco: bool,
        tensor: Tensor,
        scale: Tensor,
        colour: Colour,
        canvas: &InputSpec,
        device: Device,
    ) -> Result<Spectral> {
        let c = canvas.channels;
        let colour = if c == 3 && colour == Colour::Decorrelated {
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
            Tensor::f_eye(c, (Kind::Float, device))?
        };
        let mean = Tensor::f_from_slice(&canvas.mean)?
            .f_to_kind(Kind::Float)?
            .f_to_device(device)?
            .f_clamp(LOGIT_MARGIN, 1.0 - LOGIT_MARGIN)?;
        let logit_mean = logit(&mean)?.f_view([1, c, 1, 1])?;
        Ok(Spectral { maco, tensor, scale, colour, logit_mean, spec: canvas.clone() })
    }

    /// The gain applied after the inverse FFT.
    fn gain(&self) -> f64 {
        if self.maco {
            MACO_GAIN
        } else {
            1.0 / FOURIER_DAMPING
        }
    }

    /// The image before colour mixing and squashing, in the (decorrelated)
    /// colour space: the inverse FFT of the parameterised spectrum.
    fn signal(&self) -> Result<Tensor> {
        let size = [self.spec.height, self.spec.width];
        let scale = self.scale.f_to_kind(Kind::ComplexFloat)?;
        let coefficients = if self.maco {
            Tensor::f_complex(&self.tensor.f_cos()?, &self.tensor.f_sin()?)?.f_mul(&scale)?
        } else {
            self.tensor.f_view_as_complex()?.f_mul(&scale)?
        };
        Ok(coefficients
            .f_fft_irfft2(Some(size.as_slice()), [-2, -1], "ortho")?
            .f_mul_scalar(self.gain())?)
    }

    /// The inverse of `images`' map for a start image: the rfft2 of the signal
    /// that gives `images`, before the gain and the scale.
    fn coefficients_of(&self, images: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| -> Result<Tensor> {
            let x01 = self.spec.denormalise(images)?.f_clamp(LOGIT_MARGIN, 1.0 - LOGIT_MARGIN)?;
            let rgb = logit(&x01)?.f_sub(&self.logit_mean)?;
            let inverse = Tensor::f_linalg_inv(&self.colour)?;
            let signal = Tensor::f_einsum("nchw,dc->ndhw", &[&rgb, &inverse], None::<&[i64]>)?;
            let signal = signal.f_div_scalar(self.gain())?;
            Ok(signal.f_fft_rfft2(None::<&[i64]>, [-2, -1], "ortho")?)
        })
    }
}

impl Parameterisation for Spectral {
    fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    fn tensor_mut(&mut self) -> &mut Tensor {
        &mut self.tensor
    }

    fn images(&self) -> Result<Tensor> {
        let rgb =
            Tensor::f_einsum("nchw,dc->ndhw", &[&self.signal()?, &self.colour], None::<&[i64]>)?;
        let x01 = rgb.f_add(&self.logit_mean)?.f_sigmoid()?;
        self.spec.normalise(&x01)
    }
}

fn logit(p: &Tensor) -> Result<Tensor> {
    let odds = p.f_div(&p.f_ones_like()?.f_sub(p)?)?;
    Ok(odds.f_log()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, Optimizer};

    fn spec() -> InputSpec {
        InputSpec::small_rgb()
    }

    fn fourier() -> ParamSpec {
        ParamSpec { param: Param::Fourier, colour: Colour::Decorrelated, decay: 1.0 }
    }

    fn magnitude() -> Magnitude {
        tch::manual_seed(5);
        let values = Tensor::rand([3, 32, 17], (Kind::Float, Device::Cpu)) + 0.1;
        Magnitude::from_values(
            Vec::<f32>::try_from(values.reshape([-1])).unwrap(),
            32,
            vec![0.3, 0.4, 0.3],
        )
        .unwrap()
    }

    #[test]
    fn zero_spectrum_is_the_mean_image() {
        let mut param = fourier().build(2, &spec(), None, Start::Own, Device::Cpu).unwrap();
        let _ = tch::no_grad(|| param.tensor_mut().zero_());
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
    fn maco_keeps_the_magnitude_fixed_while_the_phase_moves() {
        let magnitude = magnitude();
        let input = InputSpec { height: 10, width: 14, ..spec() };
        let maco = ParamSpec { param: Param::Maco, ..fourier() };
        let made = Spectral::maco(&maco, 2, &input, &magnitude, Start::Own, Device::Cpu).unwrap();
        let mut param: Box<dyn Parameterisation> = Box::new(made);
        let start = param.tensor().detach().copy();
        let weights = Tensor::randn(param.images().unwrap().size(), (Kind::Float, Device::Cpu));
        let mut adam = Adam::new(param.tensor()).unwrap();
        for _ in 0..10 {
            let objective = (param.images().unwrap() * &weights).sum(Kind::Float);
            let gradient = Tensor::run_backward(&[&objective], &[param.tensor()], false, false);
            let step = adam.step(&gradient[0], 0.5).unwrap();
            let _ = tch::no_grad(|| param.tensor_mut().f_add_(&step).unwrap());
        }
        let moved = f64::try_from((param.tensor().detach() - &start).abs().max()).unwrap();
        assert!(moved > 0.1, "the phase moved by only {moved}");
        // |FFT| of the decorrelated signal is the fixed magnitude (times the gain),
        // away from the DC and Nyquist columns, which irfft2 makes Hermitian.
        let check = Spectral::maco(&maco, 2, &input, &magnitude, Start::Own, Device::Cpu).unwrap();
        let check = Spectral { tensor: param.tensor().detach(), ..check };
        let spectrum = check.signal().unwrap().fft_rfft2(None::<&[i64]>, [-2, -1], "ortho").abs();
        let columns = spectrum.size()[3];
        let inner = |t: &Tensor| t.narrow(-1, 1, columns - 2);
        let expected = inner(&check.scale).unsqueeze(0) * MACO_GAIN;
        let error = f64::try_from((inner(&spectrum) - &expected).abs().max()).unwrap();
        let scale = f64::try_from(expected.abs().max()).unwrap();
        assert!(error <= 1e-4 * scale, "magnitude drifted by {error} (scale {scale})");
    }

    #[test]
    fn a_fourier_start_image_comes_back_as_the_image() {
        tch::manual_seed(3);
        let x01 = Tensor::rand([1, 3, 16, 12], (Kind::Float, Device::Cpu)) * 0.8 + 0.1;
        let images = spec().normalise(&x01).unwrap();
        let start = Start::Images(images.copy());
        let param = fourier().build(1, &spec(), None, start, Device::Cpu).unwrap();
        let back = param.images().unwrap();
        let error = f64::try_from((&back - &images).abs().max()).unwrap();
        assert!(error < 1e-3, "a photo start comes back {error} off");
    }

    #[test]
    fn a_maco_start_keeps_the_photos_phase() {
        tch::manual_seed(4);
        let x01 = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.6 + 0.2;
        let canvas = InputSpec { height: 32, width: 32, ..spec() };
        let images = canvas.normalise(&x01).unwrap();
        let maco = ParamSpec { param: Param::Maco, ..fourier() };
        let magnitude = magnitude();
        let own = maco.build(1, &canvas, Some(&magnitude), Start::Own, Device::Cpu).unwrap();
        let from_photo = maco
            .build(1, &canvas, Some(&magnitude), Start::Images(images.copy()), Device::Cpu)
            .unwrap();
        let correlation = |a: &Tensor, b: &Tensor| {
            let (a, b) = (a.flatten(0, -1), b.flatten(0, -1));
            let (a, b) = (&a - a.mean(Kind::Float), &b - b.mean(Kind::Float));
            f64::try_from((&a * &b).sum(Kind::Float) / (a.norm() * b.norm())).unwrap()
        };
        let with_phase = correlation(&from_photo.images().unwrap(), &images);
        let without = correlation(&own.images().unwrap(), &images);
        assert!(with_phase > 0.5 && with_phase > without + 0.3, "{with_phase} vs {without}");
    }
}
