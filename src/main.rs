//! The `classviz` binary: parse flags, build a `Config`, run, report.

use std::process::ExitCode;

use classviz::cli::{self, Parsed};
use classviz::Status;

fn main() -> ExitCode {
    let config = match cli::parse_args(std::env::args_os()) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Exit(status)) => return status.into(),
        Err(err) => {
            eprintln!("classviz: {}", cli::one_line(&format!("{err:#}")));
            return Status::Usage.into();
        }
    };
    match classviz::run(&config) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("classviz: {}", cli::one_line(&format!("{err:#}")));
            Status::Failure.into()
        }
    }
}
