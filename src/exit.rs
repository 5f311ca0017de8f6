//! The process's exit statuses, one place for what each number means.

use std::process::ExitCode;

/// The process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    /// The run failed: bad model, bad class, unwritable output, divergence.
    Failure = 1,
    /// The command line itself was wrong.
    Usage = 2,
    /// Ctrl-C or SIGTERM: finished images are kept; rerun to finish.
    Interrupted = 130,
}

/// What a panic exits with (Rust's own convention): a bug in classviz, never a
/// user error. The panic hook in `main` turns it into one line.
pub const INTERNAL_ERROR: u8 = 101;

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(Status::Success as u8, 0);
        assert_eq!(Status::Failure as u8, 1);
        assert_eq!(Status::Usage as u8, 2);
        assert_eq!(Status::Interrupted as u8, 130);
        assert_eq!(INTERNAL_ERROR, 101);
    }
}
