//! classviz: class model visualisation for image classifiers.
//!
//! Reproduces Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional
//! Networks" (arXiv 1312.6034): starting from the zero image in the model's
//! zero-centred input space, gradient ascent on `S_c(I) − λ‖I‖²` finds an image
//! that the classifier scores highly for class `c`; adding the dataset mean
//! back and writing a PNG shows what the model has learned about that class.
//! Many classes run as batches; finished images survive interruption.
//!
//! ```no_run
//! use classviz::cli::{parse_args, Parsed};
//! if let Parsed::Run(request) = parse_args(["classviz", "--class", "100,130"])? {
//!     classviz::execute(&request)?;
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! The modules, from the command line down (a module uses only those below
//! it; `tests/layering.rs` checks this, and docs/architecture.md explains it):
//!
//! - [`cli`]: flags → a typed [`Request`];
//! - [`commands`]: one module per subcommand; `visualise` resolves its
//!   request into a plan once, then runs batches beside a writer thread;
//! - [`report`], [`grid`], [`gallery`]: what the user sees;
//! - [`ascent`], [`saliency`]: the one optimisation loop, and attribution;
//! - [`objective`], [`presets`], [`param`], [`optim`], [`views`], [`priors`],
//!   [`spectrum`]: what is maximised, and how images are made, seen and stepped;
//! - [`model`], [`probe`], [`network`]: a loaded model; the network behind one
//!   seam (scores and vector-Jacobian products), TorchScript or compiled;
//! - [`formats`], [`image_io`], [`metadata`], [`classes`]: records, images and
//!   files in and out, the sidecar, class names;
//! - [`allocator`], [`exit`], [`files`], [`home`], [`input`], [`knobs`],
//!   [`memory`], [`precision`], [`rng`], [`shard`]: the foundations.

pub mod allocator;
pub mod ascent;
pub mod cam;
pub mod classes;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod files;
pub mod formats;
pub mod gallery;
pub mod grid;
pub mod home;
pub mod image_io;
pub mod input;
pub mod knobs;
pub mod maxflow;
pub mod memory;
pub mod metadata;
pub mod model;
pub mod network;
pub mod objective;
pub mod optim;
pub mod param;
pub mod precision;
pub mod presets;
pub mod priors;
pub mod probe;
pub mod report;
pub mod rng;
pub mod saliency;
pub mod sanity;
pub mod segment;
pub mod shard;
pub mod spectrum;
pub mod views;

pub use commands::{execute, Request};
pub use exit::Status;
