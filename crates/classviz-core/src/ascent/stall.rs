//! Stalls: an image whose gradient was exactly zero on the last steps, or
//! that ended where it started (a grey image from the zero start of a
//! network whose score does not depend on it there).

use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// A class whose score gradient was exactly zero on this many consecutive
/// final steps (or on every step of a shorter run) has stalled.
pub const STALL_STEPS: u32 = 10;

/// Per image, how many consecutive steps ended with an exactly zero gradient.
pub(super) struct StallWatch {
    streak: Tensor,
}

impl StallWatch {
    pub(super) fn new(count: i64, device: Device) -> Result<StallWatch> {
        Ok(StallWatch { streak: Tensor::f_zeros([count], (Kind::Int64, device))? })
    }

    /// Count this step's zero gradients; stays on the device (no sync).
    pub(super) fn observe(&mut self, gradient: &Tensor) -> Result<()> {
        let count = gradient.size()[0];
        let zero =
            gradient.f_reshape([count, -1])?.f_abs()?.f_amax([1].as_slice(), false)?.f_eq(0)?;
        self.streak = self.streak.f_add_scalar(1)?.f_mul(&zero)?;
        Ok(())
    }

    /// Which images stalled, given where they started and ended.
    pub(super) fn stalled(&self, start: &Tensor, end: &Tensor, iters: u32) -> Result<Vec<bool>> {
        let count = start.size()[0];
        let unmoved = end
            .f_sub(start)?
            .f_reshape([count, -1])?
            .f_abs()?
            .f_amax([1].as_slice(), false)?
            .f_eq(0)?;
        let flat = self.streak.f_ge(i64::from(STALL_STEPS.min(iters)))?.f_logical_or(&unmoved)?;
        Ok(Vec::<bool>::try_from(flat.f_to_device(Device::Cpu)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_gradients_count_towards_a_stall() {
        let mut watch = StallWatch::new(2, Device::Cpu).unwrap();
        let gradient = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0]).view([2, 2]);
        for _ in 0..STALL_STEPS {
            watch.observe(&gradient).unwrap();
        }
        let start = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        let end = Tensor::from_slice(&[0.5f32, 0.0, 1.0, 0.0]).view([2, 2]);
        assert_eq!(watch.stalled(&start, &end, 100).unwrap(), vec![true, false]);
        let fresh = StallWatch::new(2, Device::Cpu).unwrap();
        assert_eq!(fresh.stalled(&start, &start, 100).unwrap(), vec![true, true], "unmoved");
    }
}
