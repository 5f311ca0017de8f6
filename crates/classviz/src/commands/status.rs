//! `classviz status`: which classes of a list have an image in an output folder.

use std::path::PathBuf;

use anyhow::Result;

use crate::report;
use classviz_engine::model::ModelRequest;
use classviz_records::classes::{self, ClassSelection};
use classviz_records::exit::Status;
use classviz_records::formats::StatusReport;

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
    let model = report::with_warnings(crate::commands::load_model(&request.model)?);
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
