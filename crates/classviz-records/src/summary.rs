//! `<out>/summary.jsonl`: one line per image, its result record and the
//! run's parameters. A rerun replaces an image's line, under a file lock, so
//! that shards writing into one folder never tear or interleave lines.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::result::ImageResult;

/// The run's parameters, recorded with every summary line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunParams {
    pub model: String,
    pub lr: f64,
    pub l2: f64,
    pub seed: u64,
    pub device: String,
    pub batch: usize,
}

/// One line of `<out>/summary.jsonl`: the `--json` keys plus the run's parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryLine {
    #[serde(flatten)]
    pub result: ImageResult,
    #[serde(flatten)]
    pub params: RunParams,
}

impl SummaryLine {
    /// Add this line to the summary at `path`, dropping any earlier line for
    /// the same image (a `--force` rerun), so that the summary says what the
    /// folder holds. Under an exclusive advisory lock, in one write, so that
    /// concurrent classviz processes (shards) never interleave or tear lines.
    pub fn append_to(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string(self)?;
        text.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock().with_context(|| format!("locking {}", path.display()))?;
        let written = self.write_locked(&mut file, &text);
        let _ = file.unlock();
        written.with_context(|| format!("writing {}", path.display()))
    }

    fn write_locked(&self, file: &mut std::fs::File, text: &str) -> std::io::Result<()> {
        let mut old = String::new();
        file.read_to_string(&mut old)?;
        let same_image = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|value| value["path"].as_str() == Some(self.result.path.as_str()))
        };
        if !old.lines().any(same_image) {
            file.seek(SeekFrom::End(0))?;
            return file.write_all(text.as_bytes()).and_then(|()| file.flush());
        }
        let mut kept: String =
            old.lines().filter(|line| !same_image(line)).map(|line| format!("{line}\n")).collect();
        kept.push_str(text);
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(kept.as_bytes()).and_then(|()| file.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::class_result;
    use crate::result::Subject;

    fn params() -> RunParams {
        RunParams {
            model: "m.pt".into(),
            lr: 1.0,
            l2: 1e-4,
            seed: 0,
            device: "cpu".into(),
            batch: 4,
        }
    }

    #[test]
    fn a_summary_keeps_one_line_per_image() {
        let path =
            std::env::temp_dir().join(format!("classviz-summary-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let params = params();
        let line = |path: &str, logit: f64| {
            let mut result = class_result();
            result.path = path.into();
            if let Subject::Class { logit: l, .. } = &mut result.subject {
                *l = logit;
            }
            SummaryLine { result, params: params.clone() }
        };
        for (image, logit) in [("a.png", 1.0), ("b.png", 2.0), ("a.png", 3.0)] {
            line(image, logit).append_to(&path).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<SummaryLine> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            lines,
            vec![line("b.png", 2.0), line("a.png", 3.0)],
            "the rerun replaces its line"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn summary_lines_round_trip() {
        let params = params();
        let line = SummaryLine { result: class_result(), params };
        let text = serde_json::to_string(&line).unwrap();
        let back: SummaryLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        assert_eq!(back.result.top1(), Some(true));
        assert_eq!(back.result.stem().as_deref(), Some("100_black_swan"));
    }
}
