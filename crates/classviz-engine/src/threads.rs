//! How many threads the CPU engines run when neither `--threads` nor
//! `OMP_NUM_THREADS` says: the cores that are free when the run starts.
//!
//! libtorch starts one OpenMP thread per core, and OpenMP's threads spin while
//! they wait for each other. Beside another busy process a thread that has no
//! core of its own makes the others spin for it at every barrier, and a step
//! takes many times as long (docs/benchmarks.md measures it). Starting with
//! the cores nobody else is running on keeps every thread on a core of its
//! own; on a quiet machine that is every core, as before.

use std::path::Path;

/// The kernel's count of runnable threads, system-wide, right now.
const LOADAVG: &str = "/proc/loadavg";

/// The thread count for a run that names none: `None` where the user's
/// `OMP_NUM_THREADS` decides (a user's setting wins) or the machine's load
/// cannot be read; else the cores free now, at least one.
pub fn default_threads() -> Option<usize> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().ok()?.get();
    // The fewest of a few readings: a process that runs for a moment (the
    // shell that started this one) should not cost a core for the whole run.
    let mut fewest = runnable_threads(Path::new(LOADAVG))?;
    for _ in 1..READINGS {
        std::thread::sleep(std::time::Duration::from_millis(READING_GAP_MS));
        fewest = fewest.min(runnable_threads(Path::new(LOADAVG))?);
    }
    Some(free_cores(cores, fewest))
}

/// Readings of the runnable count, and the milliseconds between them.
const READINGS: usize = 3;
const READING_GAP_MS: u64 = 5;

/// Cores not taken by the `runnable` threads other than this one.
fn free_cores(cores: usize, runnable: usize) -> usize {
    cores.saturating_sub(runnable.saturating_sub(1)).max(1)
}

/// The fourth field of `/proc/loadavg`, `R/T`: R runnable of T threads.
fn runnable_threads(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().nth(3)?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_cores_leave_out_the_other_runnable_threads() {
        assert_eq!(free_cores(2, 1), 2, "only this process runs: every core");
        assert_eq!(free_cores(2, 2), 1, "one busy process beside it");
        assert_eq!(free_cores(2, 9), 1, "at least one");
        assert_eq!(free_cores(16, 4), 13);
    }

    #[test]
    fn the_runnable_count_is_read_from_loadavg() {
        let path = std::env::temp_dir().join(format!("classviz-loadavg-{}", std::process::id()));
        std::fs::write(&path, "0.52 0.58 0.59 3/467 12345\n").unwrap();
        assert_eq!(runnable_threads(&path), Some(3));
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(runnable_threads(&path), None);
        std::fs::remove_file(path).unwrap();
    }
}
