//! The writer: each finished batch's PNGs (and canvases, alpha maps, frames
//! and GIFs), the images scored as saved, the result lines and the summary,
//! on its own thread while the next batch optimises.

use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::commands::visualise::names::Job;
use crate::commands::visualise::plan::Plan;
use crate::printer::{Printer, Progress};
use classviz_core::ascent::{self, Ascent};
use classviz_core::attribution::map_values;
use classviz_core::objective::{self, Goal, GoalSpec, Objective};
use classviz_engine::model::Model;
use classviz_engine::tensors::{self, Display};
use classviz_records::heatmap;
use classviz_records::layout::Extra;
use classviz_records::pixels::{self, Fit, Pixels};
use classviz_records::png_text::PngRecord;
use classviz_records::result;
use classviz_records::result::{FacetSummary, ImageResult, Subject};
use classviz_records::summary::SummaryLine;

/// Delay between GIF frames.
const GIF_FRAME_MS: u32 = 80;
/// The alpha map is fully opaque from this percentile of its attribution up.
const ALPHA_PERCENTILE: f64 = 99.0;

/// A finished batch on the host, for the writer.
pub struct Finished {
    jobs: Vec<Job>,
    /// `[N, C, H, W]` in the model's space, on the CPU.
    images: Tensor,
    /// Kept frames, on the CPU.
    frames: Vec<(u32, Tensor)>,
    /// With `--alpha`: the accumulated attribution `[N, H, W]`, on the CPU.
    alpha: Option<Tensor>,
    /// With MaCo crops: the whole canvases, on the CPU.
    canvas: Option<Tensor>,
    stalled: Vec<bool>,
    /// Optimisation time per image.
    seconds: f64,
}

impl Finished {
    /// The rows of an ascent that are `jobs` (the batch's real ones, which
    /// come first), copied to the host: the batch's one sync.
    pub fn from_ascent(jobs: &[Job], ascent: Ascent, started: Instant) -> Result<Finished> {
        let real = jobs.len() as i64;
        let host = |t: &Tensor| -> Result<Tensor> {
            Ok(t.f_narrow(0, 0, real)?.f_to_device(Device::Cpu)?)
        };
        Ok(Finished {
            jobs: jobs.to_vec(),
            images: host(&ascent.images)?,
            frames: ascent
                .frames
                .iter()
                .map(|(step, t)| Ok((*step, host(t)?)))
                .collect::<Result<_>>()?,
            alpha: ascent.alpha.as_ref().map(host).transpose()?,
            canvas: ascent.canvas.as_ref().map(host).transpose()?,
            stalled: ascent.stalled[..jobs.len()].to_vec(),
            seconds: started.elapsed().as_secs_f64() / jobs.len() as f64,
        })
    }
}

/// What the writer did.
#[derive(Debug, Default)]
pub struct WriterTotals {
    pub written: usize,
    /// What each stalled image showed.
    pub stalled: Vec<String>,
}

/// The writer thread: PNGs (and frames), scores of the saved images, result
/// lines and summary lines, batch by batch in order.
pub fn write_batches(
    receiver: mpsc::Receiver<Finished>,
    model: &Model,
    plan: &Plan,
    progress: &Progress,
    printer: &Printer,
) -> Result<WriterTotals> {
    // One torch thread for this thread's work on the CPU. With a second
    // OpenMP team here, libgomp counts more threads than cores and the
    // optimiser's barriers sleep instead of spinning: every batch after the
    // first ran slower (docs/benchmarks.md). The optimising thread has set
    // its own count already, so it keeps it.
    if model.device() == Device::Cpu {
        tch::set_num_threads(1);
    }
    let mut totals = WriterTotals::default();
    for finished in receiver {
        let (saved, facets) = save_batch(model, plan, &finished)?;
        if !finished.frames.is_empty() {
            save_frames(model, plan, &finished.jobs, &finished.frames)?;
        }
        for result in saved {
            if result.stalled {
                progress.note(&stall_warning(&result, plan));
                totals.stalled.push(result.describe());
            }
            printer.print(&result)?;
            let line = SummaryLine { result, params: plan.summary.clone() };
            line.append_to(&plan.layout.summary())?;
            totals.written += 1;
            progress.classes_done(1);
        }
        for summary in &facets {
            printer.print(summary)?;
        }
    }
    Ok(totals)
}

/// One warning line for an image whose ascent stalled.
fn stall_warning(result: &ImageResult, plan: &Plan) -> String {
    let start = plan
        .ascent
        .init
        .as_ref()
        .map_or("its start".to_string(), |init| format!("the {init} start"));
    format!(
        "warning: {}: the ascent stalled (the gradient was exactly zero on its last {} steps, or the image never left {start}), so {} shows nothing learned; try --init noise:0.01",
        result.describe(),
        ascent::STALL_STEPS.min(plan.ascent.iters),
        result.path
    )
}

/// Write the kept frames: PNGs under `<out>/frames/<stem>/` (`--save-every`)
/// and an animated GIF next to each image (`--gif`).
fn save_frames(model: &Model, plan: &Plan, jobs: &[Job], frames: &[(u32, Tensor)]) -> Result<()> {
    let output = &plan.output;
    for (row, &job) in jobs.iter().enumerate() {
        let name = plan.name(job);
        let mut pixels = Vec::with_capacity(frames.len());
        for (step, images) in frames {
            let frame = tensors::to_pixels(
                &images.f_narrow(0, row as i64, 1)?,
                model.input(),
                Display::Clamp,
            )?;
            if output.frames {
                let path = plan.layout.frame(&name, *step);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                pixels::write_png_atomic(&path, &frame, &[])?;
            }
            pixels.push(frame);
        }
        if output.gif {
            pixels::write_gif_atomic(&plan.layout.extra(&name, Extra::Gif), &pixels, GIF_FRAME_MS)?;
        }
    }
    Ok(())
}

/// The results of saved images (`pixels`, in job order), scored as a PNG
/// reader gets them: for a class S_c, p and the top 5; for a unit its objective.
fn outcomes(
    model: &Model,
    plan: &Plan,
    jobs: &[Job],
    pixels: &[Pixels],
) -> Result<Vec<ImageResult>> {
    let indices: Vec<i64> = jobs.iter().map(|job| job.index).collect();
    // An image saved at another size (a larger canvas) is scored as
    // `classviz score` would: stretched to the input size.
    let x = tensors::to_batch(pixels, model.input(), Fit::Stretch, model.device())?;
    let subjects = if plan.is_class() {
        model
            .classify(&x, &indices)?
            .into_iter()
            .zip(&indices)
            .map(|(scores, &class)| Subject::Class {
                class,
                name: plan.labels.name(class).to_string(),
                logit: scores.logit,
                prob: scores.prob,
                top5: result::ranked(&scores.top, &plan.labels),
            })
            .collect()
    } else {
        unit_subjects(model, plan, &x, &indices)?
    };
    Ok(jobs
        .iter()
        .zip(subjects)
        .map(|(&job, subject)| ImageResult {
            subject,
            path: plan.path(job).display().to_string(),
            iters: 0,
            seconds: 0.0,
            skipped: false,
            stalled: false,
            facet: job.facet,
        })
        .collect())
}

/// Each unit image's objective at the saved image `x`.
fn unit_subjects(model: &Model, plan: &Plan, x: &Tensor, indices: &[i64]) -> Result<Vec<Subject>> {
    let objective = &plan.ascent.objective;
    let tap = objective.tap().map(|t| t.name.clone()).unwrap_or_default();
    let goal = Goal::new(GoalSpec {
        objective,
        targets: indices,
        views: 1,
        probabilities: model.info.outputs_probabilities,
        diversity: None,
        device: model.device(),
    })?;
    let scores = goal.per_row(&model.forward(x, &goal.taps)?)?;
    let scores = Vec::<f64>::try_from(scores.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
    Ok(indices
        .iter()
        .zip(scores)
        .map(|(&index, score)| {
            let channel = (!matches!(objective, Objective::Layer(_))).then_some(index);
            let unit = match channel {
                Some(channel) => format!("{objective}:{channel}"),
                None => objective.to_string(),
            };
            Subject::Unit { unit, tap: tap.clone(), channel, score }
        })
        .collect())
}

/// Each target's facets in `jobs` (consecutive, whole): their scores and the
/// mean pairwise similarity of their saved images at the facets' tap.
fn facet_summaries(
    model: &Model,
    plan: &Plan,
    pixels: &[Pixels],
    results: &[ImageResult],
) -> Result<Vec<FacetSummary>> {
    let Some(facets) = &plan.ascent.facets else { return Ok(Vec::new()) };
    let x = tensors::to_batch(pixels, model.input(), Fit::Stretch, model.device())?;
    let activations = model.forward(&x, &[facets.tap.id])?.taps.remove(0);
    let similarity = objective::gram_similarity(&activations, i64::from(facets.count))?;
    let similarity =
        Vec::<f64>::try_from(similarity.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?;
    Ok(results
        .chunks(facets.count as usize)
        .zip(similarity)
        .map(|(results, similarity)| FacetSummary {
            target: match &results[0].subject {
                Subject::Class { class, name, .. } => format!("{class} ({name})"),
                Subject::Unit { unit, .. } => unit.clone(),
            },
            facets: results.len() as u32,
            scores: results.iter().map(ImageResult::score).collect(),
            similarity,
            tap: facets.tap.name.clone(),
            diversity: facets.weight,
        })
        .collect())
}

/// Re-score images already in `--out` (skipped targets), as saved.
pub fn score_existing(model: &Model, plan: &Plan, jobs: &[Job]) -> Result<Vec<ImageResult>> {
    let mut pixels = Vec::with_capacity(jobs.len());
    let mut iters = Vec::with_capacity(jobs.len());
    for &job in jobs {
        let path = plan.path(job);
        pixels.push(pixels::load_photo(&path, model.input(), Fit::Stretch)?.pixels);
        let text = pixels::read_png_text(&path).unwrap_or_default();
        iters.push(PngRecord::iters_of(&text).unwrap_or(plan.ascent.iters));
    }
    let results = outcomes(model, plan, jobs, &pixels)?;
    Ok(results
        .into_iter()
        .zip(iters)
        .map(|(r, iters)| ImageResult { iters, skipped: true, ..r })
        .collect())
}

/// The PNGs of a finished batch: each image as shown, and as saved for scoring.
fn batch_pngs(
    model: &Model,
    plan: &Plan,
    finished: &Finished,
) -> Result<(Vec<pixels::PngJob>, Vec<Pixels>)> {
    let mut saved = Vec::with_capacity(finished.jobs.len());
    let mut pngs = Vec::with_capacity(finished.jobs.len());
    for (row, &job) in finished.jobs.iter().enumerate() {
        let image = finished.images.f_narrow(0, row as i64, 1)?;
        let pixels = tensors::to_pixels(&image, model.input(), Display::Clamp)?;
        let shown = if plan.output.stretch {
            tensors::to_pixels(&image, model.input(), Display::Stretch)?
        } else {
            pixels.clone()
        };
        pngs.push(pixels::PngJob {
            path: plan.path(job),
            pixels: shown,
            text: plan.png_record(job).to_text(),
        });
        saved.push(pixels);
    }
    Ok((pngs, saved))
}

/// Write each image of a finished batch (and its canvas and alpha map) and
/// score it as saved; with facets also summarise each target's facets.
fn save_batch(
    model: &Model,
    plan: &Plan,
    finished: &Finished,
) -> Result<(Vec<ImageResult>, Vec<FacetSummary>)> {
    let (pngs, saved_pixels) = batch_pngs(model, plan, finished)?;
    if let Some(canvas) = &finished.canvas {
        let mut canvases = Vec::with_capacity(pngs.len());
        for (row, png) in pngs.iter().enumerate() {
            let image = canvas.f_narrow(0, row as i64, 1)?;
            canvases.push(pixels::PngJob {
                path: plan.layout.extra(&plan.name(finished.jobs[row]), Extra::Canvas),
                pixels: tensors::to_pixels(&image, model.input(), Display::Clamp)?,
                text: png.text.clone(),
            });
        }
        pixels::write_pngs_atomic(&canvases)?;
    }
    pixels::write_pngs_atomic(&pngs)?;
    if let Some(alpha) = &finished.alpha {
        for (row, pixels) in saved_pixels.iter().enumerate() {
            let strength =
                heatmap::normalised(&map_values(&alpha.f_get(row as i64)?)?, ALPHA_PERCENTILE);
            let bytes: Vec<u8> = strength.iter().map(|v| (v * 255.0).round() as u8).collect();
            let path = plan.layout.extra(&plan.name(finished.jobs[row]), Extra::Alpha);
            pixels::write_rgba_png_atomic(&path, pixels, &bytes)?;
        }
    }
    // Score the images as saved (clamped to [0,1], 8-bit), not the unclamped
    // float tensors: that is what a reader of the PNG gets.
    let results: Vec<ImageResult> = outcomes(model, plan, &finished.jobs, &saved_pixels)?
        .into_iter()
        .zip(&finished.stalled)
        .map(|(r, &stalled)| ImageResult {
            iters: plan.ascent.iters,
            seconds: finished.seconds,
            stalled,
            ..r
        })
        .collect();
    let facets = facet_summaries(model, plan, &saved_pixels, &results)?;
    Ok((results, facets))
}
