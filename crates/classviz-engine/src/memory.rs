//! How much memory the machine has left, and how much a forward/backward
//! pass took. A run whose first batch cannot fit is refused before anything
//! is allocated: on Linux an over-committed allocation is not reported as an
//! error, the process is killed later.

/// Bytes this process may still allocate: the kernel's `MemAvailable`, or the
/// cgroup's limit less its usage where that is smaller. `None` where neither
/// can be read (then nothing is refused).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(|text| kib_field(text, "MemAvailable:"));
    let cgroup = cgroup_headroom();
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// cgroup v2: `memory.max − memory.current`, where a limit is set.
fn cgroup_headroom() -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok();
    let limit: u64 = read("memory.max")?.trim().parse().ok()?;
    let used: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(limit.saturating_sub(used))
}

/// A `Name:   123 kB` field of a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

fn status_field(name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/self/status").ok()?, name)
}

/// Measures how far resident memory rose above where it stood when started:
/// the peak-RSS mark is reset (`/proc/self/clear_refs`), the work runs, and
/// the new peak is read.
pub struct PeakMeter {
    start: Option<u64>,
}

impl PeakMeter {
    pub fn start() -> PeakMeter {
        // "5" resets the peak resident set size to the current one (Linux ≥ 4.0).
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        PeakMeter { start: if reset { status_field("VmRSS:") } else { None } }
    }

    /// Bytes the peak rose by; `None` where it cannot be measured.
    pub fn growth(&self) -> Option<u64> {
        Some(status_field("VmHWM:")?.saturating_sub(self.start?))
    }
}

/// Bytes as a short human figure: "18.8 TB", "1.5 GB", "820 MB".
pub fn human(bytes: u64) -> String {
    let bytes = bytes as f64;
    if bytes >= 1e12 {
        format!("{:.1} TB", bytes / 1e12)
    } else if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else {
        format!("{:.0} MB", (bytes / 1e6).max(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(kib_field(text, "MemAvailable:"), Some(1_024_000));
        assert_eq!(kib_field(text, "Missing:"), None);
    }

    #[test]
    fn this_machine_reports_memory_and_peaks() {
        assert!(available_bytes().is_some_and(|b| b > 0));
        let meter = PeakMeter::start();
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        if let Some(growth) = meter.growth() {
            assert!(growth >= 32 << 20, "a 64 MiB block raised the peak by only {growth}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1_500_000_000), "1.5 GB");
        assert_eq!(human(820_000_000), "820 MB");
        assert_eq!(human(18_840_000_000_000), "18.8 TB");
    }
}
