//! The subcommands, one module each. Each takes its flags as parsed and
//! resolves them against the model once; [`execute`] runs the one asked for
//! and returns the exit status.

pub mod completions;
pub mod exemplars;
pub mod gallery;
pub mod info;
pub mod load;
pub mod saliency;
pub mod score;
pub mod status;
pub mod visualise;

use anyhow::Result;
use classviz_records::exit::Status;

use crate::flags::{Cli, Command};

/// Run what the command line asked for; the status is the process's exit status.
pub fn execute(cli: &Cli) -> Result<Status> {
    match &cli.command {
        None => visualise::run(&cli.run),
        Some(Command::Status(run)) => status::run(run),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Saliency(args)) => saliency::run(args),
        Some(Command::Exemplars(args)) => exemplars::run(args),
        Some(Command::Score(args)) => score::run(args),
        Some(Command::Gallery(args)) => gallery::run(args),
        Some(Command::Completions(args)) => completions::script(args.shell),
        Some(Command::Man) => completions::man(),
    }
}
