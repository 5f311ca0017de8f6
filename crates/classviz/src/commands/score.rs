//! `classviz score`: does a model see the intended class in images? A second
//! network's verdict on class models that another network made.

use std::path::Path;

use anyhow::{bail, Context, Result};
use classviz_engine::tensors;
use classviz_records::classes::Labels;
use classviz_records::exit::Status;
use classviz_records::layout::ImageName;
use classviz_records::pixels;
use classviz_records::reports::{ScoreRow, ScoreTotals};
use classviz_records::result;

use crate::commands::load::load_model;
use crate::flags::ScoreArgs;
use crate::printer::Printer;

/// Top-1, top-5 and probability of each image's intended class.
pub fn run(args: &ScoreArgs) -> Result<Status> {
    let model = load_model(&args.model)?;
    let labels = &model.info.labels;
    let fixed = args.class.as_deref().map(|spec| labels.resolve(spec)).transpose()?;
    let mut rows = Vec::with_capacity(args.images.len());
    for path in &args.images {
        let class = match fixed {
            Some(class) => class,
            None => class_from_file_name(path, labels)?,
        };
        let photo = pixels::load_photo(path, model.input(), args.fit)?;
        let x = tensors::to_batch(&[photo.pixels], model.input(), args.fit, model.device())?;
        let scores = model.classify(&x, &[class])?.remove(0);
        rows.push(ScoreRow {
            image: path.display().to_string(),
            class,
            name: labels.name(class).to_string(),
            prob: scores.prob,
            top1: scores.top.first().is_some_and(|&(c, _)| c == class),
            top5: scores.top.iter().any(|&(c, _)| c == class),
            predicted: result::ranked(&scores.top, labels),
        });
    }
    let totals = ScoreTotals::of(&model.info.path.display().to_string(), rows);
    Printer::of(&args.printing).print(&totals)?;
    Ok(Status::Success)
}

/// The class an image was made for, from its `<index>_…` or `<index>.…` name.
fn class_from_file_name(path: &Path, labels: &Labels) -> Result<i64> {
    let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(class) = ImageName::parse(&stem).class else {
        bail!("cannot tell the class of {}: name it <index>_….png or pass --class", path.display());
    };
    labels.resolve(&class.to_string()).with_context(|| format!("class of {}", path.display()))
}
