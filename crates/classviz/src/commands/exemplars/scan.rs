//! The scan: every image of this shard through the model, a batch at a time,
//! while the next batch is decoded on another thread; each target keeps its
//! best and worst. The scan's state (where it is, what each target keeps,
//! what was skipped) is saved now and then, and on Ctrl-C, so that the same
//! command continues where it stopped.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use classviz_core::exemplars::{activations, Keeper};
use classviz_engine::model::Model;
use classviz_engine::tensors;
use classviz_records::files;
use classviz_records::pixels::{self, Pixels};
use classviz_records::reports::Skipped;
use serde::{Deserialize, Serialize};

use super::plan::ExemplarsPlan;
use crate::commands::visualise::runner::stop_requested;
use crate::printer::Progress;

/// The state is saved at least this often while a scan runs.
const SAVE_EVERY: Duration = Duration::from_secs(20);
/// Decoded batches waiting for the network, at most.
const DECODED_AHEAD: usize = 2;

/// Where a scan is: what it is of, how far it got, and what it keeps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScanState {
    pub key: String,
    /// How many of this shard's images are done.
    pub done: usize,
    /// Per target, in the plan's order.
    pub keepers: Vec<Keeper>,
    pub skipped: Vec<Skipped>,
    pub seconds: f64,
}

impl ScanState {
    fn fresh(plan: &ExemplarsPlan) -> ScanState {
        let keepers = plan.targets.iter().map(|_| Keeper::new(plan.top, plan.bottom)).collect();
        ScanState { key: plan.key.clone(), done: 0, keepers, skipped: Vec::new(), seconds: 0.0 }
    }

    /// The saved state at `path` if it is of this scan; else a fresh one (a
    /// note says why an older state is not continued).
    pub fn resume(
        plan: &ExemplarsPlan,
        path: &std::path::Path,
        force: bool,
        progress: &Progress,
    ) -> Result<ScanState> {
        if force || !path.is_file() {
            return Ok(ScanState::fresh(plan));
        }
        let text = files::read_text(path, "the exemplar scan's state")?;
        match serde_json::from_str::<ScanState>(&text) {
            Ok(state) if state.key == plan.key => {
                if state.done < plan.mine.len() {
                    progress.note(&format!(
                        "continuing the scan after {} of {} images",
                        state.done,
                        plan.mine.len()
                    ));
                }
                Ok(state)
            }
            _ => {
                progress.note(&format!(
                    "{} was made by another scan (other flags, model or images); starting afresh",
                    path.display()
                ));
                Ok(ScanState::fresh(plan))
            }
        }
    }

    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        files::write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }
}

/// A decoded batch: the places of its images and each one's pixels, or why it was skipped.
struct Decoded {
    places: Vec<usize>,
    pixels: Vec<Result<Pixels, String>>,
}

/// Scan this shard's images from `state` on; `Ok(false)` if stopped (Ctrl-C).
pub fn scan(
    model: &Model,
    plan: &ExemplarsPlan,
    state: &mut ScanState,
    path: &std::path::Path,
    progress: &Progress,
) -> Result<bool> {
    let todo: Vec<usize> = plan.mine[state.done.min(plan.mine.len())..].to_vec();
    progress.items_done(state.done);
    let (started, before) = (Instant::now(), state.seconds);
    let mut saved = Instant::now();
    let finished = std::thread::scope(|scope| -> Result<bool> {
        let (sender, receiver) = mpsc::sync_channel::<Decoded>(DECODED_AHEAD);
        scope.spawn(|| decode_batches(plan, &todo, model, sender));
        for decoded in receiver {
            if stop_requested() {
                return Ok(false);
            }
            score_batch(model, plan, state, decoded, progress)?;
            state.seconds = before + started.elapsed().as_secs_f64();
            if saved.elapsed() >= SAVE_EVERY {
                state.save(path)?;
                saved = Instant::now();
            }
        }
        Ok(true)
    });
    let finished = finished?;
    state.seconds = before + started.elapsed().as_secs_f64();
    state.save(path)?;
    Ok(finished)
}

/// Decode `todo` a batch at a time (fitted to the model's input) and hand each on.
fn decode_batches(
    plan: &ExemplarsPlan,
    todo: &[usize],
    model: &Model,
    sender: mpsc::SyncSender<Decoded>,
) {
    for places in todo.chunks(plan.batch) {
        let pixels = places
            .iter()
            .map(|&place| {
                pixels::load_photo(&plan.images[place], model.input(), plan.fit)
                    .map(|photo| photo.pixels)
                    .map_err(|err| format!("{err:#}"))
            })
            .collect();
        if sender.send(Decoded { places: places.to_vec(), pixels }).is_err() || stop_requested() {
            return;
        }
    }
}

/// One batch through the network: each readable image's activations offered
/// to every target's keeper, each unreadable one skipped with one line.
fn score_batch(
    model: &Model,
    plan: &ExemplarsPlan,
    state: &mut ScanState,
    decoded: Decoded,
    progress: &Progress,
) -> Result<()> {
    let mut read = Vec::new();
    let mut places = Vec::new();
    for (place, pixels) in decoded.places.iter().zip(decoded.pixels) {
        match pixels {
            Ok(pixels) => {
                read.push(pixels);
                places.push(*place);
            }
            Err(why) => {
                let path: PathBuf = plan.images[*place].clone();
                progress.note(&format!("skipped {}: {why}", path.display()));
                state.skipped.push(Skipped { path: path.display().to_string(), why });
            }
        }
    }
    if !read.is_empty() {
        let x = tensors::to_batch(&read, model.input(), plan.fit, model.device())?;
        // Images are scored in one pass, but each keeps its own place in the list.
        let scored = activations(model, &x, 0, &plan.objective, &plan.targets)
            .context("scoring a batch of images")?;
        for (row, per_target) in scored.into_iter().enumerate() {
            for (keeper, mut one) in state.keepers.iter_mut().zip(per_target) {
                one.image = places[row];
                keeper.offer(one);
            }
        }
    }
    state.done += decoded.places.len();
    progress.items_done(decoded.places.len());
    Ok(())
}
