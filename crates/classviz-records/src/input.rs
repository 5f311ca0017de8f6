//! What a network takes: its input shape and the normalisation into its
//! zero-centred space, `x = (x01 − mean) / std` for an image x01 in [0,1].
//! The paper optimises in that space and adds the mean back at the end; the
//! tensor side of it is `classviz_engine::input`.

use anyhow::{bail, Result};

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
    pub fn small_rgb() -> InputSpec {
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
    fn channel_lists_are_checked() {
        assert!(check_channel_values("mean", &[0.5, 0.5], 3).is_err());
        assert!(check_channel_values("mean", &[0.5, f64::NAN, 0.5], 3).is_err());
        assert!(check_channel_values("mean", &[0.5; 3], 3).is_ok());
        assert_eq!(InputSpec::small_rgb().values(), 3 * 16 * 12);
    }
}
