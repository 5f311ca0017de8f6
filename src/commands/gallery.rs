//! `classviz gallery`: a self-contained HTML page to browse runs side by side.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::exit::Status;
use crate::gallery::{self, GallerySpec};
use crate::report;

/// `classviz gallery`.
#[derive(Debug, Clone)]
pub struct GalleryConfig {
    pub dirs: Vec<PathBuf>,
    pub scores: Vec<PathBuf>,
    /// The page; `None` writes `index.html` in the first folder.
    pub out: Option<PathBuf>,
    pub embed: bool,
    pub title: Option<String>,
}

/// Write the page and say what it holds; skipped lines are warnings.
pub fn run(config: &GalleryConfig) -> Result<Status> {
    let Some(first) = config.dirs.first() else { bail!("give at least one folder") };
    let out = config.out.clone().unwrap_or_else(|| first.join(gallery::GALLERY_FILE));
    let title = config.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = config.dirs.iter().map(|d| d.display().to_string()).collect();
        format!("classviz: {}", names.join(" | "))
    });
    let spec = GallerySpec {
        dirs: config.dirs.clone(),
        scores: config.scores.clone(),
        out,
        embed: config.embed,
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
        config.dirs.len()
    ))?;
    Ok(Status::Success)
}
