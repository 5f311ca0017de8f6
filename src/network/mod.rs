//! The network, seen through one seam ([`Network`]): scores and taps for a
//! batch, and vector-Jacobian products. Implemented by a TorchScript module
//! and by a compiled AOTInductor package of the ascent step.

pub mod seam;
pub mod torchscript;

pub use seam::{tap_as_grid, Cotangent, Network, Outputs, Pass, Weights, Wrt};
pub use torchscript::{first_line_of_torch_error, torch_error, TorchScript};

/// `--engine`: what runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineChoice {
    /// The engine measured faster on the device, when a package matches the
    /// model, the device and the shape; else TorchScript, with a line saying why.
    #[default]
    Auto,
    /// The AOTInductor package compiled by `weights/export.py --compile`; an error if none matches.
    Compiled,
    /// The TorchScript model.
    Torchscript,
}
