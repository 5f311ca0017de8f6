//! classviz's files and records, with no libtorch: what a run writes and
//! reads back. Each record is defined once, in a module named for what it
//! holds; every output file name is built and parsed in one place
//! ([`layout`]); files are written atomically ([`files`]).
//!
//! - [`result`], [`summary`]: an image's record, and the folder's summary of them;
//! - [`provenance`], [`png_text`]: what made an image, and its PNG's text chunks;
//! - [`reports`]: what the other subcommands report;
//! - [`sidecar`], [`tap`]: what a model file's `.json` says of it and its taps;
//! - [`choice`]: the named enums the command line and the records share;
//! - [`classes`], [`input`], [`shard`]: class names, the model's input, shards;
//! - [`pixels`], [`heatmap`], [`grid`], [`gallery`]: images, colour maps and
//!   overlays, contact sheets, the HTML page;
//! - [`exit`]: exit statuses and usage errors.

pub mod choice;
pub mod classes;
pub mod exit;
pub mod files;
pub mod gallery;
pub mod grid;
pub mod heatmap;
pub mod input;
pub mod layout;
pub mod pixels;
pub mod png_text;
pub mod provenance;
pub mod reports;
pub mod result;
pub mod shard;
pub mod sidecar;
pub mod summary;
pub mod tap;
