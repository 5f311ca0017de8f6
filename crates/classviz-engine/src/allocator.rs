//! The process's allocator policy, set once at start for every subcommand.
//!
//! An ascent step allocates and frees the same large activation buffers over
//! and over. glibc's `malloc` serves blocks above a (dynamic) threshold with
//! fresh `mmap`s and returns the top of its heap to the kernel past another, so
//! every step maps its buffers afresh and page-faults on each page. Raising both
//! thresholds keeps the freed memory in the process for the next step. The peak
//! stays what it was; the memory is returned when the process ends.
//! The README's "Performance" section has the measurement (`make bench`,
//! with and without).
//!
//! `CLASSVIZ_MALLOC=system` leaves glibc's defaults alone (for comparison), and
//! so does glibc's own `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or
//! `GLIBC_TUNABLES` in the environment: a user's setting wins.

/// Blocks below this come from the heap, not from their own `mmap`.
pub const MMAP_THRESHOLD: i32 = 1 << 30;
/// Free memory at the heap's top is returned to the kernel only past this.
pub const TRIM_THRESHOLD: i32 = i32::MAX;

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The thresholds above are in force.
    KeepFreedMemory,
    /// glibc's defaults, or the user's own malloc settings.
    System,
}

/// The policy the environment asks for.
fn requested() -> Policy {
    let user_tuned = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    let system = std::env::var("CLASSVIZ_MALLOC").is_ok_and(|v| v.trim() == "system");
    if user_tuned || system {
        Policy::System
    } else {
        Policy::KeepFreedMemory
    }
}

/// Set the policy the environment asks for; call first thing in `main`.
pub fn apply() -> Policy {
    match requested() {
        Policy::KeepFreedMemory if keep_freed_memory() => Policy::KeepFreedMemory,
        _ => Policy::System,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() -> bool {
    use std::ffi::c_int;
    // glibc's <malloc.h>.
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    // SAFETY: mallopt only sets two of malloc's tuning parameters; it is
    // called before any thread of ours exists, and glibc locks its arenas.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thresholds_are_accepted_by_this_libc() {
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(keep_freed_memory(), "mallopt refused the thresholds");
        }
    }
}
