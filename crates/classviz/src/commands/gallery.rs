//! `classviz gallery`: a self-contained HTML page to browse runs side by side.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::report;
use classviz_records::exit::Status;
use classviz_records::gallery::{self, GallerySpec};

/// `classviz gallery`.
#[derive(Debug, Clone)]
pub struct GalleryRequest {
    pub dirs: Vec<PathBuf>,
    pub scores: Vec<PathBuf>,
    /// The page; `None` writes `index.html` in the first folder.
    pub page: Option<PathBuf>,
    pub embed: bool,
    pub title: Option<String>,
}

/// Write the page and say what it holds; skipped files and lines are warnings.
pub fn run(request: &GalleryRequest) -> Result<Status> {
    let Some(first) = request.dirs.first() else { bail!("give at least one folder") };
    let out = request.page.clone().unwrap_or_else(|| first.join(gallery::GALLERY_FILE));
    let title = request.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = request.dirs.iter().map(|d| gallery::column_name(d)).collect();
        format!("classviz: {}", names.join(" | "))
    });
    let spec = GallerySpec {
        dirs: request.dirs.clone(),
        scores: request.scores.clone(),
        out,
        embed: request.embed,
        title,
    };
    let written = gallery::write_gallery(&spec)?;
    for warning in &written.warnings {
        eprintln!("classviz: warning: {warning}");
    }
    report::print_line(&format!(
        "{}: {} rows, {} images from {} folder(s)",
        written.path.display(),
        written.rows,
        written.images,
        request.dirs.len()
    ))?;
    Ok(Status::Success)
}
