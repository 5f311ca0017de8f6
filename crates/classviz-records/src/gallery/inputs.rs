//! What the page reads besides the images: each folder's `summary.jsonl`
//! and the verdicts of `classviz score --json` files. A malformed line is
//! skipped with a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::files;
use crate::layout::SUMMARY_FILE;
use crate::reports::ScoreTotals;
use crate::summary::SummaryLine;

/// A second network's verdict on one image.
#[derive(Debug, Clone)]
pub(super) struct Verdict {
    /// The scoring model's file stem.
    pub model: String,
    pub prob: f64,
    pub top1: bool,
    pub class: i64,
    pub name: String,
}

/// A folder's `summary.jsonl`, keyed by image stem; a malformed line is
/// skipped with a warning, a missing file is no error (images only).
pub(super) fn read_summary(
    root: &Path,
    warnings: &mut Vec<String>,
) -> Result<HashMap<String, SummaryLine>> {
    let path = root.join(SUMMARY_FILE);
    let mut lines = HashMap::new();
    if !path.exists() {
        return Ok(lines);
    }
    let text = files::read_text(&path, "summary")?;
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = serde_json::from_str::<serde_json::Value>(line)
            .map_err(|err| format!("is not JSON ({err})"))
            .and_then(|value| {
                serde_json::from_value::<SummaryLine>(value)
                    .map_err(|err| format!("is not a summary line ({err})"))
            });
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(why) => {
                warnings.push(format!("{} line {} {why}: skipped", path.display(), number + 1));
                continue;
            }
        };
        match parsed.result.stem() {
            // Later lines (re-runs) replace earlier ones.
            Some(stem) => {
                lines.insert(stem, parsed);
            }
            None => warnings.push(format!(
                "{} line {} has no image path: skipped",
                path.display(),
                number + 1
            )),
        }
    }
    Ok(lines)
}

/// Verdicts of `classviz score --json` files, keyed by the image's canonical path.
pub(super) fn read_scores(
    paths: &[PathBuf],
    warnings: &mut Vec<String>,
) -> Result<HashMap<PathBuf, Verdict>> {
    let mut verdicts = HashMap::new();
    for path in paths {
        let text = files::read_text(path, "score file")?;
        let totals: ScoreTotals = serde_json::from_str(text.trim()).with_context(|| {
            format!("score file {} is not the JSON of `classviz score --json`", path.display())
        })?;
        let model = Path::new(&totals.model)
            .file_stem()
            .map_or(totals.model.clone(), |s| s.to_string_lossy().into_owned());
        for row in totals.images {
            // Paths in the file are as `classviz score` was given them: relative
            // to where it ran, which is most often here.
            match std::fs::canonicalize(&row.image) {
                Ok(canonical) => {
                    let verdict = Verdict {
                        model: model.clone(),
                        prob: row.prob,
                        top1: row.top1,
                        class: row.class,
                        name: row.name,
                    };
                    verdicts.insert(canonical, verdict);
                }
                Err(_) => warnings.push(format!(
                    "{}: {} not found from here: skipped",
                    path.display(),
                    row.image
                )),
            }
        }
    }
    Ok(verdicts)
}
