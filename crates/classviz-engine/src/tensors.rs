//! Tensors meet 8-bit pixels: the optimised image to pixels (with the mean
//! added back, clamped or stretched for display), and pixels to the model's
//! normalised input batch.

use anyhow::Result;
use classviz_records::input::InputSpec;
use classviz_records::pixels::{fit_pixels, Fit, Pixels};
use tch::{Device, Kind, Tensor};

use crate::input::Normalise;

/// `--stretch` maps this percentile to black and its mirror (100 − p) to white.
pub const STRETCH_PERCENTILE: f64 = 1.0;

/// How a float image in [0,1] units becomes 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// The paper: clamp to [0,1].
    Clamp,
    /// Map the `STRETCH_PERCENTILE`…`100 − STRETCH_PERCENTILE` range to [0,1].
    Stretch,
}

/// The optimised image `[1, C, H, W]` (model space) → 8-bit pixels, with the mean added back.
pub fn to_pixels(image: &Tensor, spec: &InputSpec, display: Display) -> Result<Pixels> {
    let x01 = spec
        .denormalise(&image.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?)?
        .f_squeeze_dim(0)?;
    let x01 = match display {
        Display::Clamp => x01,
        Display::Stretch => {
            let flat = x01.f_reshape([-1])?;
            let low = flat.f_quantile_scalar(STRETCH_PERCENTILE / 100.0, None, false, "linear")?;
            let high =
                flat.f_quantile_scalar(1.0 - STRETCH_PERCENTILE / 100.0, None, false, "linear")?;
            let range = high.f_sub(&low)?.f_clamp_min(1e-12)?;
            x01.f_sub(&low)?.f_div(&range)?
        }
    };
    let bytes = x01
        .f_clamp(0.0, 1.0)?
        .f_mul_scalar(255.0)?
        .f_round()?
        .f_to_kind(Kind::Uint8)?
        .f_permute([1, 2, 0])?
        .f_contiguous()?;
    let data = Vec::<u8>::try_from(bytes.f_reshape([-1])?)?;
    let size = image.size();
    Ok(Pixels {
        width: size[size.len() - 1] as u32,
        height: size[size.len() - 2] as u32,
        channels: spec.channels as u8,
        data,
    })
}

/// 8-bit pixels → `[1, C, H, W]` float tensor in [0,1] on `device`.
pub fn pixels_to_tensor(pixels: &Pixels, device: Device) -> Result<Tensor> {
    let shape = [pixels.height as i64, pixels.width as i64, i64::from(pixels.channels)];
    let tensor =
        Tensor::f_from_slice(&pixels.data)?.f_view(shape)?.f_permute([2, 0, 1])?.f_unsqueeze(0)?;
    Ok(tensor.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?.f_to_device(device)?)
}

/// 8-bit images as the model's normalised input batch `[N, C, H, W]` on
/// `device`, each fitted to the input size first (`fit`). Scoring photos and
/// re-scoring saved images go through here alike.
pub fn to_batch(images: &[Pixels], spec: &InputSpec, fit: Fit, device: Device) -> Result<Tensor> {
    let mut batch = images
        .iter()
        .map(|p| pixels_to_tensor(&fit_pixels(p, spec, fit)?, device))
        .collect::<Result<Vec<_>>>()?;
    // One image keeps its layout (channels-last, as decoded): no copy.
    let batch = if batch.len() == 1 { batch.remove(0) } else { Tensor::f_cat(&batch, 0)? };
    spec.normalise(&batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(channels: i64) -> InputSpec {
        InputSpec {
            channels,
            height: 4,
            width: 6,
            mean: vec![127.0 / 255.0; channels as usize],
            std: vec![128.0 / 255.0; channels as usize],
        }
    }

    #[test]
    fn zero_image_becomes_the_mean_colour() {
        let pixels = to_pixels(
            &Tensor::zeros([1, 3, 4, 6], (Kind::Float, Device::Cpu)),
            &spec(3),
            Display::Clamp,
        )
        .unwrap();
        assert_eq!((pixels.width, pixels.height, pixels.channels), (6, 4, 3));
        assert!(pixels.data.iter().all(|&v| v == 127), "{:?}", &pixels.data[..6]);
    }

    #[test]
    fn pixels_round_trip_through_tensors() {
        let data: Vec<u8> = (0..72).map(|i| (i * 3) as u8).collect();
        let pixels = Pixels { width: 6, height: 4, channels: 3, data };
        let x01 = pixels_to_tensor(&pixels, Device::Cpu).unwrap();
        assert_eq!(x01.size(), vec![1, 3, 4, 6]);
        let back = to_pixels(&spec(3).normalise(&x01).unwrap(), &spec(3), Display::Clamp).unwrap();
        assert_eq!(back, pixels);
    }

    #[test]
    fn stretch_uses_the_full_range() {
        let image =
            Tensor::linspace(-0.05, 0.05, 72, (Kind::Float, Device::Cpu)).view([1, 3, 4, 6]);
        let plain = to_pixels(&image, &spec(3), Display::Clamp).unwrap();
        let stretched = to_pixels(&image, &spec(3), Display::Stretch).unwrap();
        let range = |p: &Pixels| p.data.iter().max().unwrap() - p.data.iter().min().unwrap();
        assert!(range(&plain) < 20);
        assert_eq!(range(&stretched), 255);
    }
}
