//! Where an ascent starts: `--init` as written ([`InitSpec`]: the zero
//! image, noise, or a photo), resolved ([`Init`], a photo read and fitted
//! once), and the starting images it gives.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use classviz_engine::input::Normalise;
use classviz_engine::tensors;
use classviz_records::input::InputSpec;
use classviz_records::pixels::Pixels;

/// Where the paper's zero start cannot be taken (the model's input gradient is
/// not finite at the zero image: a norm of the input there), the ascent starts
/// from noise of this σ instead, in the model's zero-centred units: as near
/// the zero image as a finite gradient allows.
pub const OFF_ZERO_NOISE: f64 = 1e-3;

/// `--init` as written: the starting point of the ascent.
#[derive(Debug, Clone, PartialEq)]
pub enum InitSpec {
    /// The zero image in the model's zero-centred space, i.e. the mean image (the paper).
    Zero,
    /// Gaussian noise of this σ in the model's zero-centred space, seeded per
    /// class so that a class starts alike in any batch.
    Noise(f64),
    /// A photo (`image:PATH`): feature accentuation starts from it.
    Image(PathBuf),
}

impl FromStr for InitSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("zero") {
            return Ok(InitSpec::Zero);
        }
        if let Some(path) = text.strip_prefix("image:") {
            if path.trim().is_empty() {
                return Err("image: needs a path (image:PHOTO.jpg)".into());
            }
            return Ok(InitSpec::Image(PathBuf::from(path)));
        }
        let sigma = text.strip_prefix("noise:").ok_or_else(|| {
            format!("'{text}' is not zero, noise:σ (e.g. noise:0.01) or image:PATH")
        })?;
        match sigma.trim().parse::<f64>() {
            Ok(sigma) if sigma.is_finite() && sigma > 0.0 => Ok(InitSpec::Noise(sigma)),
            _ => Err(format!("noise σ '{sigma}' must be a finite number greater than 0")),
        }
    }
}

impl fmt::Display for InitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitSpec::Zero => write!(f, "zero"),
            InitSpec::Noise(sigma) => write!(f, "noise:{sigma}"),
            InitSpec::Image(path) => write!(f, "image:{}", path.display()),
        }
    }
}

/// The starting point, resolved: a photo is read and fitted once.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    Zero,
    Noise(f64),
    /// Pixels start at the photo; Fourier at its spectrum; MaCo at its phase.
    Photo(Arc<StartPhoto>),
}

/// A photo to start from, fitted to the canvas (8-bit, host memory).
#[derive(Debug, Clone, PartialEq)]
pub struct StartPhoto {
    pub path: PathBuf,
    pub pixels: Pixels,
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zero => write!(f, "zero"),
            Init::Noise(sigma) => write!(f, "noise:{sigma}"),
            Init::Photo(photo) => write!(f, "image:{}", photo.path.display()),
        }
    }
}

/// The start photo as `count` images in the model's space over the canvas.
pub(super) fn photo_images(
    photo: &StartPhoto,
    canvas: &InputSpec,
    count: i64,
    device: Device,
) -> Result<Tensor> {
    let x01 = tensors::pixels_to_tensor(&photo.pixels, device)?;
    let one = canvas.normalise(&x01)?;
    Ok(one.f_expand([count, -1, -1, -1], false)?.f_contiguous()?)
}

/// The starting images: Gaussian noise of σ, seeded per row (`seeds`), drawn
/// on the CPU row by row so that the start does not depend on the device or on
/// the rest of the batch.
pub(super) fn noise_images(
    canvas: &InputSpec,
    seeds: &[u64],
    sigma: f64,
    device: Device,
) -> Result<Tensor> {
    let mut rows = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        tch::manual_seed(seed as i64);
        rows.push(Tensor::f_randn(canvas.batch_shape(1), (Kind::Float, Device::Cpu))?);
    }
    let noise = Tensor::f_cat(&rows, 0)?.f_mul_scalar(sigma)?;
    let start = canvas.zeros(seeds.len() as i64, device)?;
    Ok(start.f_add(&noise.f_to_device(device)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_parses() {
        assert_eq!("zero".parse(), Ok(InitSpec::Zero));
        assert_eq!(" noise:0.01".parse(), Ok(InitSpec::Noise(0.01)));
        assert_eq!("image:cat.jpg".parse(), Ok(InitSpec::Image("cat.jpg".into())));
        for bad in ["noise", "noise:", "noise:-1", "noise:nan", "noise:0", "gauss:1", "", "image:"]
        {
            assert!(bad.parse::<InitSpec>().is_err(), "{bad}");
        }
        assert_eq!(InitSpec::Noise(0.5).to_string(), "noise:0.5");
    }
}
