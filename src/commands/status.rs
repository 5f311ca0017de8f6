//! `classviz status`: which classes of a list have an image in an output folder.

use std::path::PathBuf;

use anyhow::Result;

use crate::classes::{self, ClassSelection};
use crate::exit::Status;
use crate::formats::StatusReport;
use crate::model::ModelRequest;
use crate::report;

/// `classviz status`.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    pub classes: ClassSelection,
    pub model: ModelRequest,
    pub out_dir: PathBuf,
    pub json: bool,
}

/// Report done and missing classes of a list in a folder. Exit status 0 when
/// all are done, 1 when some are missing.
pub fn run(request: &StatusRequest) -> Result<Status> {
    let model = report::with_warnings(request.model.load()?);
    let labels = &model.info.labels;
    let classes = request.classes.resolve(labels)?;
    let missing: Vec<i64> = classes
        .iter()
        .copied()
        .filter(|&class| !classes::class_image_path(&request.out_dir, class, labels).exists())
        .collect();
    let report = StatusReport {
        out: request.out_dir.display().to_string(),
        total: classes.len(),
        done: classes.len() - missing.len(),
        missing,
    };
    report::print_status(&report, request.json)?;
    Ok(if report.missing.is_empty() { Status::Success } else { Status::Failure })
}
