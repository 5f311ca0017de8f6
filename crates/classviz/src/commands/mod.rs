//! The subcommands, one module each. Each takes its flags as parsed and
//! resolves them against the model once; [`execute`] runs the one asked for
//! and returns the exit status.

pub mod completions;
pub mod gallery;
pub mod info;
pub mod saliency;
pub mod score;
pub mod status;
pub mod visualise;

use anyhow::Result;
use classviz_engine::model::{Model, ModelRequest};
use classviz_records::exit::Status;

use crate::flags::{Cli, Command, ModelArgs};
use crate::home;

/// Run what the command line asked for; the status is the process's exit status.
pub fn execute(cli: &Cli) -> Result<Status> {
    match &cli.command {
        None => visualise::run(&cli.run),
        Some(Command::Status(run)) => status::run(run),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Saliency(args)) => saliency::run(args),
        Some(Command::Score(args)) => score::run(args),
        Some(Command::Gallery(args)) => gallery::run(args),
        Some(Command::Completions(args)) => completions::script(args.shell),
        Some(Command::Man) => completions::man(),
    }
}

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
