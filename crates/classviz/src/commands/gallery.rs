//! `classviz gallery`: a self-contained HTML page to browse runs side by side.

use anyhow::{bail, Result};
use classviz_records::exit::Status;
use classviz_records::gallery::{self, GallerySpec};
use classviz_records::layout::Layout;

use crate::flags::GalleryArgs;
use crate::printer::Printer;

/// Write the page and say what it holds; skipped files and lines are warnings.
pub fn run(args: &GalleryArgs) -> Result<Status> {
    let Some(first) = args.dirs.first() else { bail!("give at least one folder") };
    let out = args.page.clone().unwrap_or_else(|| Layout::new(first).gallery());
    let title = args.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = args.dirs.iter().map(|d| gallery::column_name(d)).collect();
        format!("classviz: {}", names.join(" | "))
    });
    let spec = GallerySpec {
        dirs: args.dirs.clone(),
        scores: args.scores.clone(),
        out,
        embed: args.embed,
        title,
    };
    let written = gallery::write_gallery(&spec)?;
    let printer = Printer::of(&args.printing);
    for warning in &written.warnings {
        printer.note(&format!("warning: {warning}"));
    }
    printer.print(&written)?;
    Ok(Status::Success)
}
