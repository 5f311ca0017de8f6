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

/// A usage conflict found after parsing (a flag that does not fit the model or
/// another flag): exits [`Status::Usage`] wherever it is detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage conflict as an error, for `return Err(usage_error(…))`.
pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The exit status for an error: [`Status::Usage`] when any cause is a
/// [`UsageError`], else [`Status::Failure`].
pub fn status_of(err: &anyhow::Error) -> Status {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        Status::Usage
    } else {
        Status::Failure
    }
}

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

    #[test]
    fn a_usage_error_exits_2_even_under_context() {
        use anyhow::Context;
        let usage: anyhow::Result<()> = Err(UsageError("bad flag".into()).into());
        let wrapped = usage.context("resolving the plan").unwrap_err();
        assert_eq!(status_of(&wrapped), Status::Usage);
        assert_eq!(status_of(&anyhow::anyhow!("disk full")), Status::Failure);
    }
}
