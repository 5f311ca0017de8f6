//! The `classviz` binary: parse flags, build a `Config`, run, report.

use std::process::ExitCode;

use classviz::cli::{self, Parsed};
use classviz::Status;

fn main() -> ExitCode {
    let task = match cli::parse_args(std::env::args_os()) {
        Ok(Parsed::Run(task)) => task,
        Ok(Parsed::Exit(status)) => return status.into(),
        Err(err) => {
            eprintln!("classviz: {}", cli::one_line(&format!("{err:#}")));
            return Status::Usage.into();
        }
    };
    match classviz::execute(&task) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("classviz: {}", cli::one_line(&format!("{err:#}")));
            Status::Failure.into()
        }
    }
}
