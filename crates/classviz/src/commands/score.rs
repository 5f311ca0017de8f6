//! `classviz score`: does a model see the intended class in images? A second
//! network's verdict on class models that another network made.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::report;
use classviz_engine::model::ModelRequest;
use classviz_engine::tensors;
use classviz_records::classes::Labels;
use classviz_records::exit::Status;
use classviz_records::formats::{self, ScoreRow, ScoreTotals};
use classviz_records::pixels::{self, Fit};

/// `classviz score`.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub images: Vec<PathBuf>,
    pub class: Option<String>,
    pub fit: Fit,
    pub model: ModelRequest,
    pub json: bool,
}

/// Top-1, top-5 and probability of each image's intended class.
pub fn run(request: &ScoreRequest) -> Result<Status> {
    let model = report::with_warnings(crate::commands::load_model(&request.model)?);
    let labels = &model.info.labels;
    let fixed = request.class.as_deref().map(|spec| labels.resolve(spec)).transpose()?;
    let mut rows = Vec::with_capacity(request.images.len());
    for path in &request.images {
        let class = match fixed {
            Some(class) => class,
            None => class_from_file_name(path, labels)?,
        };
        let photo = pixels::load_photo(path, model.input(), request.fit)?;
        let x = tensors::to_batch(&[photo.pixels], model.input(), request.fit, model.device())?;
        let scores = model.classify(&x, &[class])?.remove(0);
        rows.push(ScoreRow {
            image: path.display().to_string(),
            class,
            name: labels.name(class).to_string(),
            prob: scores.prob,
            top1: scores.top.first().is_some_and(|&(c, _)| c == class),
            top5: scores.top.iter().any(|&(c, _)| c == class),
            predicted: formats::ranked(&scores.top, labels),
        });
    }
    let totals = ScoreTotals::of(&model.info.path.display().to_string(), rows);
    report::print_scores(&totals, request.json)?;
    Ok(Status::Success)
}

/// The class an image was made for, from its `<index>_…` or `<index>.…` name.
fn class_from_file_name(path: &Path, labels: &Labels) -> Result<i64> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    let after = name[digits.len()..].chars().next();
    if digits.is_empty() || !matches!(after, Some('_') | Some('.')) {
        bail!("cannot tell the class of {}: name it <index>_….png or pass --class", path.display());
    }
    labels.resolve(&digits).with_context(|| format!("class of {}", path.display()))
}
