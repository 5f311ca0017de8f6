//! The subcommands beside the main visualisation: `status`, `info`,
//! `saliency` and `score`. Each takes its plain configuration and returns the
//! process's exit status.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::ascent::{self, AscentParams};
use crate::image_io::{self, Pixels};
use crate::{classes, report, saliency};
use crate::{InfoConfig, SaliencyConfig, ScoreConfig, Status, StatusConfig};

/// `classviz status`: report done and missing classes of a list in a folder.
/// Exit status 0 when all are done, 1 when some are missing.
pub fn status(config: &StatusConfig) -> Result<Status> {
    let model = config.model.load()?;
    let classes = config.classes.resolve(&model.labels)?;
    let missing: Vec<i64> = classes
        .iter()
        .copied()
        .filter(|&class| {
            !image_io::class_image_path(&config.out_dir, class, &model.labels).exists()
        })
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

/// Forward+backward passes timed by `classviz info` (after one warm-up).
pub const INFO_TIMING_RUNS: usize = 5;

/// `classviz info`: describe the model as classviz will use it.
pub fn info(config: &InfoConfig) -> Result<Status> {
    let model = config.model.load()?;
    let mut times = Vec::with_capacity(INFO_TIMING_RUNS);
    let params = AscentParams::new(1, 1.0, 0.0);
    for run in 0..=INFO_TIMING_RUNS {
        let started = Instant::now();
        let _ = ascent::class_models(&model, &[0], &params, |_| ControlFlow::Continue(()))?;
        if run > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let input = &model.input;
    let report = report::ModelInfo {
        model: config.model.path.display().to_string(),
        input_shape: vec![input.channels, input.height, input.width],
        input_source: model.shape_source.to_string(),
        classes: model.labels.len(),
        labels: model.labels_source.clone(),
        mean: input.mean.clone(),
        std: input.std.clone(),
        output: model.output.as_ref().map(ToString::to_string),
        outputs_probabilities: model.outputs_probabilities,
        parameters: model.parameter_count,
        device: format!("{:?}", model.device).to_lowercase(),
        dtype: format!("{:?}", model.output_kind).to_lowercase(),
        forward_backward_ms: times[times.len() / 2],
    };
    report::print_info(&report, config.json)?;
    Ok(Status::Success)
}

/// `classviz saliency`: a map per photo, its overlay, the raw 16-bit map, and
/// the deletion score against a random order.
pub fn explain(config: &SaliencyConfig) -> Result<Status> {
    let model = config.model.load()?;
    image_io::ensure_writable_dir(&config.out_dir)?;
    let fixed_class = config.class.as_deref().map(|spec| model.labels.resolve(spec)).transpose()?;
    for path in &config.images {
        let photo = saliency::load_photo(path, &model.input, config.fit)?;
        let x = model.input.normalise(&image_io::pixels_to_tensor(&photo.pixels, model.device)?);
        let probs = tch::no_grad(|| model.probabilities(&x))?;
        let class = match fixed_class {
            Some(class) => class,
            None => probs.argmax(-1, false).int64_value(&[0]),
        };
        let prob = probs.double_value(&[0, class]);
        tch::manual_seed(config.seed as i64);
        let (_, map) = saliency::attribute(&model, &x, class, config.method)?;
        let deletion_auc =
            saliency::deletion_auc(&model, &x, class, &saliency::saliency_order(&map))?;
        let random = saliency::random_order(map.numel() as i64, model.device);
        let random_auc = saliency::deletion_auc(&model, &x, class, &random)?;

        let values = saliency::display_map(&map)?;
        let raw_values = saliency::normalised_map(&map, 100.0)?;
        let (width, height) = (photo.pixels.width, photo.pixels.height);
        let bbox = if config.draw_box { Some(saliency::bounding_box(&map)?) } else { None };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let name = model.labels.name(class).to_string();
        let base = image_io::output_file_name(class, &name);
        let base = format!("{stem}_{}", base.trim_end_matches(".png"));
        let heat_path = config.out_dir.join(format!("{base}_saliency.png"));
        let overlay_path = config.out_dir.join(format!("{base}_overlay.png"));
        let raw_path = config.out_dir.join(format!("{base}_saliency16.png"));
        let rgb =
            |image: image::RgbImage| Pixels { width, height, channels: 3, data: image.into_raw() };
        image_io::write_png_atomic(
            &heat_path,
            &rgb(saliency::heatmap(&values, width, height)),
            &[],
        )?;
        image_io::write_png_atomic(
            &overlay_path,
            &rgb(saliency::overlay(&photo.pixels, &values, bbox)),
            &[],
        )?;
        image_io::write_gray16_atomic(&raw_path, width, height, &saliency::map_u16(&raw_values))?;

        let report = report::SaliencyResult {
            image: path.display().to_string(),
            class,
            name,
            prob,
            method: config.method.name().to_string(),
            saliency: heat_path.display().to_string(),
            overlay: overlay_path.display().to_string(),
            raw: raw_path.display().to_string(),
            deletion_auc,
            random_auc,
            r#box: bbox.map(|(x0, y0, x1, y1)| {
                let to_original = |x: u32, y: u32, end: bool| {
                    let edge = if end { 1.0 } else { 0.0 };
                    (
                        (photo.offset.0 + (f64::from(x) + edge) * photo.scale.0)
                            .round()
                            .min(f64::from(photo.original_width)) as u32,
                        (photo.offset.1 + (f64::from(y) + edge) * photo.scale.1)
                            .round()
                            .min(f64::from(photo.original_height)) as u32,
                    )
                };
                let (left, top) = to_original(x0, y0, false);
                let (right, bottom) = to_original(x1, y1, true);
                report::BoxCoordinates { x0: left, y0: top, x1: right, y1: bottom }
            }),
        };
        report::print_saliency(&report, config.json)?;
    }
    Ok(Status::Success)
}

/// `classviz score`: top-1, top-5 and probability of each image's intended class.
pub fn score(config: &ScoreConfig) -> Result<Status> {
    let model = config.model.load()?;
    let fixed = config.class.as_deref().map(|spec| model.labels.resolve(spec)).transpose()?;
    let mut rows = Vec::with_capacity(config.images.len());
    for path in &config.images {
        let class = match fixed {
            Some(class) => class,
            None => class_from_file_name(path, &model.labels)?,
        };
        let photo = saliency::load_photo(path, &model.input, config.fit)?;
        let scores = model.score_images(&[photo.pixels], &[class])?.remove(0);
        rows.push(report::ScoreRow {
            image: path.display().to_string(),
            class,
            name: model.labels.name(class).to_string(),
            prob: scores.prob,
            top1: scores.top.first().is_some_and(|&(c, _)| c == class),
            top5: scores.top.iter().any(|&(c, _)| c == class),
            predicted: scores.top5(&model.labels),
        });
    }
    report::print_scores(&config.model.path.display().to_string(), &rows, config.json)?;
    Ok(Status::Success)
}

/// The class an image was made for, from its `<index>_…` or `<index>.…` name.
fn class_from_file_name(path: &std::path::Path, labels: &classes::Labels) -> Result<i64> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    let after = name[digits.len()..].chars().next();
    if digits.is_empty() || !matches!(after, Some('_') | Some('.')) {
        anyhow::bail!(
            "cannot tell the class of {}: name it <index>_….png or pass --class",
            path.display()
        );
    }
    labels.resolve(&digits).with_context(|| format!("class of {}", path.display()))
}
