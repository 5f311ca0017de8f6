//! A photo as the model sees it, with its class: what a plan needs of the
//! first photo (the default CAM tap) and what each subject is made from.

use std::path::Path;

use anyhow::Result;
use tch::Tensor;

use classviz_engine::model::Model;
use classviz_engine::tensors;
use classviz_records::pixels::{self, Fit, Photo};

/// The photo at `path` as the model sees it (`[1, C, H, W]`), fitted as
/// `fit` says, its class (`class`, else the model's top-1) and the model's
/// probability of it.
pub fn prepare(
    model: &Model,
    path: &Path,
    fit: Fit,
    class: Option<i64>,
) -> Result<(Photo, Tensor, i64, f64)> {
    let photo = pixels::load_photo(path, model.input(), fit)?;
    let x =
        tensors::to_batch(std::slice::from_ref(&photo.pixels), model.input(), fit, model.device())?;
    let probs = tch::no_grad(|| model.probabilities(&x))?;
    let class = match class {
        Some(class) => class,
        None => probs.f_argmax(-1, false)?.f_int64_value(&[0])?,
    };
    let prob = probs.f_double_value(&[0, class])?;
    Ok((photo, x, class, prob))
}
