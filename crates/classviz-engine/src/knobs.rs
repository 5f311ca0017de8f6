//! Settings read from the environment: switches for benchmarking the GPU path
//! (`bench/gpu.sh` sweeps them) and a timing trace. Users need none of them;
//! the defaults are the measured best (docs/gpu.md).
//!
//! - `CLASSVIZ_TRACE=1`: one stderr line per phase with the seconds since start;
//! - `CLASSVIZ_JIT=profiling|simple`: TorchScript's profiling executor with its
//!   graph optimisations, or the simple interpreter (no profiling, no fusion);
//! - `CLASSVIZ_CUDA_CHANNELS_LAST=0|1`: feed CUDA convolutions NHWC input;
//! - `CLASSVIZ_CUDNN_BENCHMARK=0|1`: cuDNN algorithm search, else on only for
//!   runs of several batches;
//! - `CLASSVIZ_SAMPLE_BATCH=N`: saliency's samples, steps and metric curves
//!   per forward pass;
//! - `CLASSVIZ_MALLOC=system`: glibc's allocator defaults instead of the
//!   policy `allocator` sets (read there, before anything else runs);
//! - `CLASSVIZ_CUDA_GRAPHS=0|1`: capture the compiled engine's step in CUDA
//!   graphs and replay them (the default where the build supports it);
//! - `CLASSVIZ_AUTO_ENGINE=compiled|torchscript`: what `--engine auto` prefers
//!   on any device, instead of the measured default.

use std::sync::OnceLock;
use std::time::Instant;

fn flag(name: &str) -> Option<bool> {
    match std::env::var(name).ok()?.trim() {
        "1" | "on" | "true" | "yes" => Some(true),
        "0" | "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn started() -> &'static Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now)
}

/// Start the trace clock (call first thing in `main`).
pub fn start_clock() {
    let _ = started();
}

/// With `CLASSVIZ_TRACE` set, print what just finished and when.
pub fn trace(what: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| flag("CLASSVIZ_TRACE").unwrap_or(false)) {
        eprintln!("classviz: trace: {:7.3} s {}", started().elapsed().as_secs_f64(), what());
    }
}

/// How TorchScript runs the model's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jit {
    /// The profiling executor: profile the first calls, then optimise (fuse) the graph.
    Profiling,
    /// The plain interpreter: no profiling runs, no fusion, no re-specialisation.
    Simple,
}

/// `CLASSVIZ_JIT`, else the default for the device.
pub fn jit(cuda: bool) -> Jit {
    match std::env::var("CLASSVIZ_JIT").ok().as_deref().map(str::trim) {
        Some("profiling") => Jit::Profiling,
        Some("simple") => Jit::Simple,
        _ => {
            if cuda {
                DEFAULT_CUDA_JIT
            } else {
                Jit::Profiling
            }
        }
    }
}

/// The default executor on CUDA: the simple interpreter, measured faster on
/// an H200 than the profiling executor (docs/gpu.md; `bench/gpu.sh`).
const DEFAULT_CUDA_JIT: Jit = Jit::Simple;

/// `CLASSVIZ_CUDA_CHANNELS_LAST`, else the default.
pub fn cuda_channels_last() -> bool {
    flag("CLASSVIZ_CUDA_CHANNELS_LAST").unwrap_or(false)
}

/// `CLASSVIZ_CUDNN_BENCHMARK`, else whether a run of `batches` batches profits.
pub fn cudnn_benchmark(batches: usize) -> bool {
    flag("CLASSVIZ_CUDNN_BENCHMARK").unwrap_or(batches >= 2)
}

/// `CLASSVIZ_AUTO_ENGINE`: `Some(true)` for compiled, `Some(false)` for TorchScript.
pub fn auto_engine_compiled() -> Option<bool> {
    match std::env::var("CLASSVIZ_AUTO_ENGINE").ok().as_deref().map(str::trim) {
        Some("compiled") => Some(true),
        Some("torchscript") => Some(false),
        _ => None,
    }
}

/// `CLASSVIZ_CUDA_GRAPHS`, else on.
pub fn cuda_graphs() -> bool {
    flag("CLASSVIZ_CUDA_GRAPHS").unwrap_or(true)
}

/// `CLASSVIZ_SAMPLE_BATCH`: images per pass for saliency's samples, steps and curves.
pub fn sample_batch() -> Option<i64> {
    std::env::var("CLASSVIZ_SAMPLE_BATCH").ok()?.trim().parse().ok().filter(|&n: &i64| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_the_environment() {
        if std::env::vars().any(|(k, _)| k.starts_with("CLASSVIZ_")) {
            return;
        }
        assert_eq!(jit(false), Jit::Profiling);
        assert!(!cudnn_benchmark(1) && cudnn_benchmark(2));
        assert_eq!(jit(true), Jit::Simple);
        assert!(!cuda_channels_last());
    }
}
