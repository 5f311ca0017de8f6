//! `classviz status`: which classes of a list have an image in an output folder.

use std::path::PathBuf;

use anyhow::Result;

use crate::classes::{self, ClassSelection};
use crate::exit::Status;
use crate::model::ModelConfig;
use crate::report;

/// `classviz status`.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    pub classes: ClassSelection,
    pub model: ModelConfig,
    pub out_dir: PathBuf,
    pub json: bool,
}

/// Report done and missing classes of a list in a folder. Exit status 0 when
/// all are done, 1 when some are missing.
pub fn run(config: &StatusConfig) -> Result<Status> {
    let model = report::with_warnings(config.model.load()?);
    let classes = config.classes.resolve(&model.labels)?;
    let missing: Vec<i64> = classes
        .iter()
        .copied()
        .filter(|&class| !classes::class_image_path(&config.out_dir, class, &model.labels).exists())
        .collect();
    let report = report::StatusReport {
        out: config.out_dir.display().to_string(),
        total: classes.len(),
        done: classes.len() - missing.len(),
        missing,
    };
    report::print_status(&report, config.json)?;
    Ok(if report.missing.is_empty() { Status::Success } else { Status::Failure })
}
