//! `classviz completions SHELL` and `classviz man`: a shell completion script
//! or a man page, generated from the command line's own definition.

use std::io::Write;

use anyhow::{Context, Result};
use classviz_records::exit::Status;

use crate::flags;

/// A completion script for `shell`, on stdout.
pub fn script(shell: clap_complete::Shell) -> Result<Status> {
    let mut bytes = Vec::new();
    clap_complete::generate(shell, &mut flags::command(), "classviz", &mut bytes);
    write(&bytes)
}

/// The man page (roff), on stdout: classviz's page (which lists the
/// subcommands), then one page per subcommand.
pub fn man() -> Result<Status> {
    write(&man_page()?)
}

fn man_page() -> Result<Vec<u8>> {
    let command = flags::command();
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut bytes)?;
    for sub in command.get_subcommands() {
        let named = sub.clone().name(format!("classviz-{}", sub.get_name()));
        clap_mangen::Man::new(named).render(&mut bytes)?;
    }
    Ok(bytes)
}

fn write(bytes: &[u8]) -> Result<Status> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_has_every_subcommand() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        for sub in ["status", "info", "saliency", "score", "gallery", "completions"] {
            assert!(page.contains(&format!("classviz\\-{sub}")), "the man page lacks {sub}");
        }
    }
}
