//! The model every subcommand that needs one loads: the one the flags name,
//! or the default found in classviz's home, with its warnings printed once.

use anyhow::Result;
use classviz_engine::model::{Model, ModelRequest};

use crate::flags::ModelArgs;
use crate::home;

/// Load the model the flags name, or the default model found in classviz's
/// home, after printing its warnings once on stderr.
pub fn load_model(args: &ModelArgs) -> Result<Model> {
    let request = args.request();
    let path = match &request.path {
        Some(path) => path.clone(),
        None => home::find(home::DEFAULT_MODEL, "model", home::MAKE_MODEL)?,
    };
    let loaded = ModelRequest { path: Some(path), ..request }.load()?;
    for warning in &loaded.warnings {
        eprintln!("classviz: warning: {warning}");
    }
    Ok(loaded.model)
}
