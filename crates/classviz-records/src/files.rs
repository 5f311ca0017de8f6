//! Files the user names and files classviz writes: an accurate message for
//! every way an input path can be wrong (missing, a folder, a FIFO, unreadable),
//! and atomic writes (temp file + rename) so that no reader ever sees a
//! half-written output.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Text inputs (class lists, label files, sidecars) larger than this are refused:
/// a real one is a few kilobytes.
pub const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;

/// Check that `path` is a regular file this process can read. `what` names the
/// input for the message ("model", "image", "classes file", "labels file").
pub fn check_input_file(path: &Path, what: &str) -> Result<()> {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == ErrorKind::NotFound => bail!("{what} {shown} not found"),
        Err(err) if err.kind() == ErrorKind::PermissionDenied => {
            bail!("{what} {shown} cannot be reached: permission denied on a folder of its path")
        }
        Err(err) => bail!("{what} {shown} cannot be read: {err}"),
    };
    if metadata.is_dir() {
        bail!("{what} {shown} is a folder, not a file");
    }
    if !metadata.is_file() {
        bail!("{what} {shown} is not a regular file ({}); give a file", file_kind(&metadata));
    }
    match File::open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::PermissionDenied => {
            bail!("{what} {shown} is not readable: permission denied")
        }
        Err(err) => bail!("{what} {shown} cannot be opened: {err}"),
    }
}

#[cfg(unix)]
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a plain file"
    }
}

#[cfg(not(unix))]
fn file_kind(_metadata: &std::fs::Metadata) -> &'static str {
    "not a plain file"
}

/// Read a small UTF-8 text input after [`check_input_file`].
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    check_input_file(path, what)?;
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("opening {what} {shown}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what} {shown}"))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        bail!("{what} {shown} is over {} MiB: is it the right file?", MAX_TEXT_BYTES >> 20);
    }
    String::from_utf8(bytes).with_context(|| format!("{what} {shown} is not UTF-8 text"))
}

/// The SHA-256 of a file's bytes, as 64 lowercase hex digits, read in chunks.
pub fn sha256_hex(path: &Path, what: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    let shown = path.display();
    let mut file = File::open(path).with_context(|| format!("opening {what} {shown}"))?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut chunk).with_context(|| format!("reading {what} {shown}"))?;
        if read == 0 {
            break;
        }
        hasher.update(&chunk[..read]);
    }
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Create `dir` if needed and prove that files can be created in it, before any work is done.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    let probe = dir.join(format!(".classviz-write-test-{}", std::process::id()));
    File::create(&probe)
        .with_context(|| format!("output folder {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("cleaning up {}", probe.display()))?;
    Ok(())
}

/// Write `bytes` to a temp file beside `path`, sync, and rename into place: a
/// reader never sees a half-written file, and a failure leaves nothing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_path(path);
    let written = write_file(&temp, bytes).and_then(|()| {
        std::fs::rename(&temp, path)
            .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Suffix of classviz's temp files: `.<name>.<host>.<pid>.tmp`.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The hidden temp file a write to `path` goes through. Host and pid in the
/// name keep concurrent writers (also on other machines) apart, and let a
/// later run tell a dead writer's leftovers from a live one's.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{}{TEMP_SUFFIX}", host_name(), std::process::id()))
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() {
        "host".to_string()
    } else {
        name
    }
}

/// Remove temp files in `dir` left by classviz processes on this host that no
/// longer run (a `kill -9`, a power cut). Returns how many were removed.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize> {
    let host = host_name();
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(TEMP_SUFFIX)) else {
            continue;
        };
        let mut parts = stem.rsplitn(3, '.');
        let (Some(pid), Some(writer_host)) = (parts.next(), parts.next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if writer_host == host
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing stale {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("classviz-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn each_bad_input_path_gets_its_own_message() {
        let dir = scratch("inputs");
        let message = |path: &Path| check_input_file(path, "model").unwrap_err().to_string();
        assert!(message(&dir.join("nope.pt")).ends_with("not found"));
        assert!(message(&dir).contains("is a folder, not a file"));
        let file = dir.join("ok.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(check_input_file(&file, "model").is_ok());
        assert!(message(Path::new("/dev/null")).contains("not a regular file (a device)"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn text_inputs_must_be_utf8() {
        let dir = scratch("utf8");
        let path = dir.join("bad.txt");
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let message = format!("{:#}", read_text(&path, "classes file").unwrap_err());
        assert!(message.contains("is not UTF-8 text"), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = scratch("fail");
        assert!(write_atomic(&dir.join("missing-subdir").join("x.png"), b"x").is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_removed() {
        let dir = scratch("stale");
        let dead = dir.join(format!(".1_a.png.{}.{}.tmp", host_name(), u32::MAX - 1));
        let live = temp_path(&dir.join("2_b.png"));
        let other_host = dir.join(".3_c.png.elsewhere.1.tmp");
        for path in [&dead, &live, &other_host] {
            std::fs::write(path, b"partial").unwrap();
        }
        assert_eq!(remove_stale_temp_files(&dir).unwrap(), 1);
        assert!(!dead.exists() && live.exists() && other_host.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
