//! classviz: class model visualisation for image classifiers.
//!
//! Reproduces Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional
//! Networks" (arXiv 1312.6034): starting from the zero image in the model's
//! zero-centred input space, gradient ascent on `S_c(I) − λ‖I‖²` finds an image
//! that the classifier scores highly for class `c`; adding the dataset mean
//! back and writing a PNG shows what the model has learned about that class.
//!
//! This crate is the command line over three libraries: `classviz_records`
//! (files and records), `classviz_engine` (the network through one seam) and
//! `classviz_core` (the maths). Flags are parsed once ([`flags`]), each
//! subcommand resolves them against the model into a plan ([`commands`]), and
//! one printer shows the results ([`printer`]).
//!
//! ```no_run
//! use classviz::flags::{parse_args, Parsed};
//! if let Parsed::Run(cli) = parse_args(["classviz", "--class", "100,130"])? {
//!     classviz::execute(&cli)?;
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod commands;
pub mod flags;
pub mod home;
pub mod printer;

pub use classviz_records::exit::Status;
pub use commands::execute;
