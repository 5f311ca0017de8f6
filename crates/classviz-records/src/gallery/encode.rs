//! How the page refers to files and holds text: paths relative to the page
//! and percent-encoded, or data URIs; HTML escaping and JSON that is safe
//! inside a script.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

/// Image files larger than this are linked, never embedded.
const MAX_EMBED_BYTES: u64 = 16 * 1024 * 1024;

/// How the page refers to a file: a data URI (`embed`), else its path
/// relative to the page, percent-encoded.
pub(super) fn reference(path: &Path, page_dir: &Path, embed: bool) -> Result<String> {
    if embed {
        let size = std::fs::metadata(path)?.len();
        if size <= MAX_EMBED_BYTES {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let kind = if path.extension().is_some_and(|e| e == "gif") { "gif" } else { "png" };
            return Ok(format!("data:image/{kind};base64,{}", base64(&bytes)));
        }
    }
    let relative = relative_path(path, page_dir);
    Ok(relative
        .components()
        .map(|c| percent_encode(&c.as_os_str().to_string_lossy()))
        .collect::<Vec<_>>()
        .join("/"))
}

/// `path` relative to the folder `base` (both absolute).
fn relative_path(path: &Path, base: &Path) -> PathBuf {
    let path: Vec<Component> = path.components().collect();
    let base: Vec<Component> = base.components().collect();
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &path[common..] {
        relative.push(part);
    }
    relative
}

/// A path segment for a URL: unreserved characters stay, the rest become %XX.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// JSON that is safe inside `<script>`: no `<` (so no `</script>` or `<!--`)
/// and no U+2028/U+2029; the JSON parser reads the escapes back as the same text.
pub fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

/// Text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn json_in_a_script_cannot_close_it() {
        let json =
            serde_json::json!({"n": "</script><script>alert(1)</script>\u{2028}"}).to_string();
        let safe = script_safe(&json);
        assert!(!safe.contains('<') && !safe.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["n"], "</script><script>alert(1)</script>\u{2028}");
    }

    #[test]
    fn base64_of_known_strings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn relative_paths_and_encoding() {
        assert_eq!(
            relative_path(Path::new("/a/b/c.png"), Path::new("/a/d")),
            PathBuf::from("../b/c.png")
        );
        assert_eq!(
            relative_path(Path::new("/a/b/c.png"), Path::new("/a/b")),
            PathBuf::from("c.png")
        );
        assert_eq!(percent_encode("a b#?.png"), "a%20b%23%3F.png");
    }
}
