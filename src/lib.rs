//! classviz: class model visualisation for TorchScript image classifiers.
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
//! if let Parsed::Run(task) = parse_args(["classviz", "--class", "100,130"])? {
//!     classviz::execute(&task)?;
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! The modules, from the command line down (a module uses only those below it;
//! `tests/layering.rs` checks this):
//!
//! - [`cli`]: flags → a [`Task`];
//! - [`commands`]: one module per subcommand, each with its configuration;
//! - [`report`], [`grid`], [`gallery`]: what the user sees;
//! - [`ascent`], [`saliency`]: the optimisation loop and the attribution maths;
//! - [`natural`], [`objective`]: parameterisations, transforms, priors,
//!   optimisers; what an image maximises;
//! - [`model`]: loading a TorchScript classifier, devices, scores;
//! - [`image_io`], [`metadata`]: images and files in and out, the sidecar;
//! - [`classes`], [`input`], [`files`], [`memory`], [`exit`], [`shard`],
//!   [`knobs`], [`precision`], [`allocator`]: the foundations.

pub mod allocator;
pub mod ascent;
pub mod classes;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod files;
pub mod gallery;
pub mod grid;
pub mod image_io;
pub mod input;
pub mod knobs;
pub mod memory;
pub mod metadata;
pub mod model;
pub mod natural;
pub mod objective;
pub mod precision;
pub mod report;
pub mod saliency;
pub mod shard;

pub use commands::{execute, Task};
pub use exit::Status;
