//! classviz's files and records, with no libtorch: what a run writes and
//! reads back. Each result record, sidecar and PNG text chunk is defined once
//! ([`formats`], [`metadata`]); every output file name is built and parsed in
//! one place ([`layout`]); files are written atomically ([`files`]).
//!
//! - [`choice`]: the named enums the command line and the records share;
//! - [`classes`], [`input`], [`shard`]: class names, the model's input, shards;
//! - [`pixels`], [`grid`], [`gallery`]: images, contact sheets, the HTML page;
//! - [`exit`]: exit statuses and usage errors.

pub mod choice;
pub mod classes;
pub mod exit;
pub mod files;
pub mod formats;
pub mod gallery;
pub mod grid;
pub mod input;
pub mod layout;
pub mod metadata;
pub mod pixels;
pub mod shard;
