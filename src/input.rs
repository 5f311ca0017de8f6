//! What a network takes: its input shape and the normalisation into its
//! zero-centred space, `x = (x01 − mean) / std` for an image x01 in [0,1].
//! The paper optimises in that space and adds the mean back at the end.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// A per-channel list of numbers from `--mean` / `--std`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelValues(pub Vec<f64>);

/// `--size`: the spatial input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSize {
    pub height: i64,
    pub width: i64,
}

/// `[C, H, W]` and the normalisation `x = (x01 − mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub channels: i64,
    pub height: i64,
    pub width: i64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Bytes of one float32 value.
pub const FLOAT_BYTES: u64 = 4;

impl InputSpec {
    /// A small RGB input (16 × 12) with ImageNet's normalisation, for unit tests.
    #[cfg(test)]
    pub(crate) fn small_rgb() -> InputSpec {
        InputSpec {
            channels: 3,
            height: 16,
            width: 12,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// The input shape for a batch of `n`: `[n, C, H, W]`.
    pub fn batch_shape(&self, n: i64) -> [i64; 4] {
        [n, self.channels, self.height, self.width]
    }

    /// Values in one image, `C·H·W`.
    pub fn values(&self) -> u64 {
        (self.channels as u64).saturating_mul(self.height as u64).saturating_mul(self.width as u64)
    }

    /// A batch of `n` zero images (the mean image), laid out channels-last:
    /// libtorch's CPU convolutions are markedly faster on NHWC than on NCHW.
    pub fn zeros(&self, n: i64, device: Device) -> Result<Tensor> {
        let nhwc =
            Tensor::f_zeros([n, self.height, self.width, self.channels], (Kind::Float, device))?;
        Ok(nhwc.f_permute([0, 3, 1, 2])?)
    }

    fn channel_tensor(&self, values: &[f64], device: Device) -> Result<Tensor> {
        Ok(Tensor::f_from_slice(values)?.f_to_kind(Kind::Float)?.f_to_device(device)?.f_view([
            1,
            self.channels,
            1,
            1,
        ])?)
    }

    /// `[0,1]` images → the model's zero-centred space.
    pub fn normalise(&self, x01: &Tensor) -> Result<Tensor> {
        let device = x01.device();
        Ok(x01
            .f_sub(&self.channel_tensor(&self.mean, device)?)?
            .f_div(&self.channel_tensor(&self.std, device)?)?)
    }

    /// The model's space → `[0,1]` units (not clamped): the paper's "add the mean back".
    pub fn denormalise(&self, x: &Tensor) -> Result<Tensor> {
        let device = x.device();
        Ok(x.f_mul(&self.channel_tensor(&self.std, device)?)?
            .f_add(&self.channel_tensor(&self.mean, device)?)?)
    }
}

/// Check a per-channel list: right length, finite.
pub fn check_channel_values(what: &str, values: &[f64], channels: i64) -> Result<()> {
    if values.len() as i64 != channels {
        bail!("{what} has {} values but the input has {channels} channels", values.len());
    }
    if values.iter().any(|v| !v.is_finite()) {
        bail!("{what} must be finite numbers, got {values:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_and_denormalise_are_inverse() {
        let spec = InputSpec {
            channels: 3,
            height: 2,
            width: 2,
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.5, 0.25, 0.2],
        };
        let x01 = Tensor::rand([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        let back = spec.denormalise(&spec.normalise(&x01).unwrap()).unwrap();
        assert!(f64::try_from((back - &x01).abs().max()).unwrap() < 1e-6);
        let mean = Tensor::from_slice(&[0.5f32, 0.4, 0.3]).view([1, 3, 1, 1]);
        let zero = spec.normalise(&mean).unwrap();
        assert!(f64::try_from(zero.abs().max()).unwrap() < 1e-6, "the mean maps to zero");
        assert_eq!(spec.values(), 12);
    }

    #[test]
    fn channel_lists_are_checked() {
        assert!(check_channel_values("mean", &[0.5, 0.5], 3).is_err());
        assert!(check_channel_values("mean", &[0.5, f64::NAN, 0.5], 3).is_err());
        assert!(check_channel_values("mean", &[0.5; 3], 3).is_ok());
    }
}
