//! classviz's network, seen through one seam ([`network::Network`]): scores
//! and tap activations for a batch, and vector-Jacobian products. A
//! TorchScript module and a compiled AOTInductor package implement it; this
//! crate holds everything that touches libtorch directly, the C++ shim
//! (`csrc/`) and every `unsafe`.
//!
//! - [`model`], [`probe`], [`taps`]: a loaded model, what running it says
//!   about it, and its taps resolved;
//! - [`network`]: the seam and its engines;
//! - [`input`], [`tensors`]: the input's normalisation, tensors to pixels;
//! - [`precision`], [`allocator`], [`memory`], [`threads`], [`knobs`]:
//!   arithmetic, malloc, memory, the CPU's thread count and the environment switches.

pub mod allocator;
pub mod error;
pub mod input;
pub mod knobs;
pub mod memory;
pub mod model;
pub mod network;
pub mod precision;
pub mod probe;
pub mod taps;
pub mod tensors;
pub mod threads;
