//! The input's normalisation on tensors: `[0,1]` images into the model's
//! zero-centred space and back, and batches of the zero image.

use anyhow::Result;
use classviz_records::input::InputSpec;
use tch::{Device, Kind, Tensor};

/// `InputSpec`'s tensor operations.
pub trait Normalise {
    /// A batch of `n` zero images (the mean image), laid out channels-last:
    /// libtorch's CPU convolutions are markedly faster on NHWC than on NCHW.
    fn zeros(&self, n: i64, device: Device) -> Result<Tensor>;
    /// `[0,1]` images → the model's zero-centred space.
    fn normalise(&self, x01: &Tensor) -> Result<Tensor>;
    /// The model's space → `[0,1]` units (not clamped): the paper's "add the mean back".
    fn denormalise(&self, x: &Tensor) -> Result<Tensor>;
}

fn channel_tensor(spec: &InputSpec, values: &[f64], device: Device) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(values)?.f_to_kind(Kind::Float)?.f_to_device(device)?.f_view([
        1,
        spec.channels,
        1,
        1,
    ])?)
}

impl Normalise for InputSpec {
    fn zeros(&self, n: i64, device: Device) -> Result<Tensor> {
        let nhwc =
            Tensor::f_zeros([n, self.height, self.width, self.channels], (Kind::Float, device))?;
        Ok(nhwc.f_permute([0, 3, 1, 2])?)
    }

    fn normalise(&self, x01: &Tensor) -> Result<Tensor> {
        let device = x01.device();
        Ok(x01
            .f_sub(&channel_tensor(self, &self.mean, device)?)?
            .f_div(&channel_tensor(self, &self.std, device)?)?)
    }

    fn denormalise(&self, x: &Tensor) -> Result<Tensor> {
        let device = x.device();
        Ok(x.f_mul(&channel_tensor(self, &self.std, device)?)?
            .f_add(&channel_tensor(self, &self.mean, device)?)?)
    }
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
    }
}
