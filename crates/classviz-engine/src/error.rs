//! The engine's failures, typed once where libtorch reports them. libtorch
//! reports every failure as text with a C++ backtrace after its first line;
//! running out of memory (on the CPU or a GPU) is told apart here, and only
//! here, so that the command line can give its advice without reading text.

use std::fmt;

use tch::TchError;

/// A failure of libtorch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// An allocation failed: a smaller batch or input would fit.
    OutOfMemory(String),
    /// Anything else libtorch refused, by its first line.
    Torch(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::OutOfMemory(message) | EngineError::Torch(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for EngineError {}

/// libtorch's own words for a failed allocation (CUDA's and the CPU allocator's).
const OUT_OF_MEMORY: [&str; 2] = ["out of memory", "can't allocate memory"];

impl EngineError {
    /// A libtorch error's first line, and whether it is out of memory.
    pub fn from_torch(err: &TchError) -> EngineError {
        let text = err.to_string();
        let line = first_line(&text).to_string();
        let lower = text.to_lowercase();
        if OUT_OF_MEMORY.iter().any(|words| lower.contains(words)) {
            EngineError::OutOfMemory(line)
        } else {
            EngineError::Torch(line)
        }
    }

    /// The engine failure somewhere in `err`'s chain, typed: one raised as an
    /// `EngineError`, or a libtorch error that reached here as it was.
    pub fn in_chain(err: &anyhow::Error) -> Option<EngineError> {
        err.chain().find_map(|cause| {
            cause
                .downcast_ref::<EngineError>()
                .cloned()
                .or_else(|| cause.downcast_ref::<TchError>().map(EngineError::from_torch))
        })
    }
}

/// A libtorch error as an `anyhow::Error` carrying its [`EngineError`].
pub fn torch_error(err: TchError) -> anyhow::Error {
    EngineError::from_torch(&err).into()
}

/// The first meaningful line of a libtorch message, without its prefix.
pub fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("unknown libtorch error")
        .trim_start_matches("Internal torch error: ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_errors_keep_their_first_line_and_out_of_memory_is_typed() {
        let err = TchError::Torch("bad thing happened\nException raised from foo\nframe #0".into());
        assert_eq!(torch_error(err).to_string(), "bad thing happened");
        let cpu = TchError::Torch("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes\nframe".into());
        assert!(matches!(EngineError::from_torch(&cpu), EngineError::OutOfMemory(_)));
        let cuda = anyhow::Error::from(TchError::Torch(
            "CUDA out of memory. Tried to allocate 2 GiB".into(),
        ))
        .context("batch 1");
        assert!(matches!(EngineError::in_chain(&cuda), Some(EngineError::OutOfMemory(_))));
        assert_eq!(EngineError::in_chain(&anyhow::anyhow!("no torch here")), None);
    }
}
