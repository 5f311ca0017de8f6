//! `classviz completions SHELL` and `classviz man`: a shell completion script
//! or a man page, generated from the command line's own definition (cli.rs
//! renders them; this prints).

use anyhow::{Context, Result};
use std::io::Write;

use classviz_records::exit::Status;

/// Text the command line generated from its definition.
#[derive(Debug, Clone)]
pub struct Generated {
    pub bytes: Vec<u8>,
}

/// Print the generated text on stdout.
pub fn run(generated: &Generated) -> Result<Status> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&generated.bytes).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(Status::Success)
}
