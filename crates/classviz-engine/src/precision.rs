//! `--precision`: the network's forward pass in bf16 (autocast) or fp32. The
//! image being optimised and its gradient stay fp32 either way; autocast only
//! runs the convolutions and matrix products in bf16.
//!
//! tch exposes only CUDA autocast at fp16, so `csrc/autocast.cpp` sets ATen's
//! autocast state directly (it is thread-local, like grad mode).

use anyhow::{bail, Result};
use tch::Device;

extern "C" {
    fn classviz_autocast_enabled(cuda: i32) -> i32;
    fn classviz_autocast_set(cuda: i32, enabled: i32) -> i32;
    fn classviz_autocast_enter() -> i32;
    fn classviz_autocast_exit() -> i32;
}

// `auto`: bf16 only where it pays, large batches on CUDA; its casts cost more
// than they save on small batches, and on the CPU (docs/gpu.md measures it).
classviz_records::choice! {
    /// `--precision`.
    pub enum Precision {
        default Auto;
        /// bf16 on CUDA for large batches, fp32 otherwise and on the CPU.
        Auto = "auto",
        /// Single precision throughout.
        Fp32 = "fp32" | "float32",
        /// The network's convolutions and matrix products in bfloat16 (autocast).
        Bf16 = "bf16" | "bfloat16",
    }
}

/// The smallest batch `auto` runs in bf16 on CUDA. Measured at 1 (fp32
/// faster) and at 128 and more (bf16 better); the threshold between is a choice.
pub const AUTO_BF16_BATCH: i64 = 8;

impl Precision {
    /// What `auto` means on `device` for a batch of `batch` images.
    pub fn resolve(self, device: Device, batch: i64) -> Precision {
        match (self, device) {
            (Precision::Auto, Device::Cuda(_)) if batch >= AUTO_BF16_BATCH => Precision::Bf16,
            (Precision::Auto, _) => Precision::Fp32,
            (chosen, _) => chosen,
        }
    }
}

/// Runs `f` with bf16 autocast on `device` when `precision`, resolved for a
/// batch of `batch` images, is bf16.
pub fn run<T>(
    precision: Precision,
    device: Device,
    batch: i64,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if precision.resolve(device, batch) != Precision::Bf16 {
        return f();
    }
    let _guard = Autocast::enter(device.is_cuda())?;
    f()
}

/// An autocast region; leaving it restores the previous state.
struct Autocast {
    cuda: i32,
    previous: i32,
}

impl Autocast {
    fn enter(cuda: bool) -> Result<Autocast> {
        let cuda = i32::from(cuda);
        // SAFETY: plain calls into ATen's thread-local autocast state; the
        // shim catches every C++ exception and returns -1 instead.
        let previous = unsafe { classviz_autocast_enabled(cuda) };
        if previous < 0
            || unsafe { classviz_autocast_set(cuda, 1) } < 0
            || unsafe { classviz_autocast_enter() } < 0
        {
            bail!("libtorch refused to turn on bf16 autocast; use --precision fp32");
        }
        Ok(Autocast { cuda, previous })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: as in `enter`; failures here leave autocast as it was.
        unsafe {
            classviz_autocast_exit();
            classviz_autocast_set(self.cuda, self.previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn precisions_parse_and_resolve() {
        assert_eq!("BF16".parse(), Ok(Precision::Bf16));
        assert_eq!("fp32".parse(), Ok(Precision::Fp32));
        assert_eq!("auto".parse(), Ok(Precision::Auto));
        assert!("fp16".parse::<Precision>().is_err());
        assert_eq!(Precision::Auto.resolve(Device::Cpu, 128), Precision::Fp32);
        assert_eq!(Precision::Auto.resolve(Device::Cuda(0), 128), Precision::Bf16);
        assert_eq!(Precision::Auto.resolve(Device::Cuda(0), 1), Precision::Fp32);
        assert_eq!(Precision::Fp32.resolve(Device::Cuda(0), 128), Precision::Fp32);
        assert_eq!(Precision::Bf16.resolve(Device::Cpu, 1), Precision::Bf16);
    }

    #[test]
    fn bf16_autocast_runs_matrix_products_in_bf16_and_ends_cleanly() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let inside = run(Precision::Bf16, Device::Cpu, 1, || Ok(a.matmul(&a).kind())).unwrap();
        assert_eq!(inside, Kind::BFloat16);
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "autocast is off again afterwards");
        let plain = run(Precision::Fp32, Device::Cpu, 1, || Ok(a.matmul(&a).kind())).unwrap();
        assert_eq!(plain, Kind::Float);
    }
}
