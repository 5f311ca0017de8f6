//! The batches of a run: each optimised on this thread while a writer thread
//! writes the one before, until done or interrupted (Ctrl-C, SIGTERM: the
//! batch in flight is dropped and every finished one is written).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::commands::visualise::names::Job;
use crate::commands::visualise::plan::Plan;
use crate::commands::visualise::writer::{self, Finished, WriterTotals};
use crate::printer::{Printer, Progress};
use classviz_core::ascent::{self, Ended};
use classviz_engine::knobs;
use classviz_engine::model::Model;

/// Finished batches waiting for the writer, at most: the optimisation waits
/// rather than holding more images in memory.
const WRITER_QUEUE: usize = 2;

/// Set by Ctrl-C / SIGTERM; the ascent stops at its next step.
static STOP: AtomicBool = AtomicBool::new(false);

/// Stop at the next step on Ctrl-C or SIGTERM. Without a handler (e.g. one
/// was already installed) the default signal behaviour still never leaves a
/// partial PNG: writes are atomic.
pub fn stop_on_signals() {
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed));
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// How the batches went.
pub struct Outcome {
    pub totals: WriterTotals,
    pub interrupted: bool,
}

/// Optimise `batches` in order, handing each finished one to the writer.
pub fn run_batches(
    model: &Model,
    plan: &Plan,
    batches: &[Batch],
    progress: &Progress,
    printer: &Printer,
) -> Result<Outcome> {
    let mut interrupted = stop_requested();
    let (totals, optimised) = std::thread::scope(|scope| -> Result<(WriterTotals, Result<()>)> {
        let (sender, receiver) = mpsc::sync_channel::<Finished>(WRITER_QUEUE);
        let writer =
            scope.spawn(|| writer::write_batches(receiver, model, plan, progress, printer));
        let optimised = (|| -> Result<()> {
            for (number, batch) in batches.iter().enumerate() {
                if interrupted {
                    break;
                }
                let Some(finished) = optimise_batch(model, plan, batch, progress)? else {
                    interrupted = true;
                    break;
                };
                knobs::trace(|| format!("batch {}/{} optimised", number + 1, batches.len()));
                if sender.send(finished).is_err() {
                    // The writer stopped: its error is the one to report.
                    break;
                }
                interrupted |= stop_requested();
            }
            Ok(())
        })();
        drop(sender);
        let totals = writer.join().map_err(|_| anyhow!("the writer thread panicked"))??;
        Ok((totals, optimised))
    })?;
    optimised?;
    Ok(Outcome { totals, interrupted })
}

/// One batch's ascent, its images copied to the host; `None` if interrupted.
fn optimise_batch(
    model: &Model,
    plan: &Plan,
    batch: &Batch,
    progress: &Progress,
) -> Result<Option<Finished>> {
    let label = batch.real().iter().map(|j| j.index.to_string()).collect::<Vec<_>>().join(",");
    progress.start_batch(&label);
    let started = Instant::now();
    let on_step = |step: &ascent::Step| {
        progress.step(step);
        if stop_requested() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let rows: Vec<i64> = batch.jobs.iter().map(|job| job.index).collect();
    match ascent::optimise(model, &rows, &plan.ascent, on_step)? {
        Ended::Finished(ascent) => Ok(Some(Finished::from_ascent(batch.real(), ascent, started)?)),
        Ended::Stopped => Ok(None),
    }
}

/// Split `todo` into batches of at most `batch` jobs. With `same_shape`
/// (CUDA) the batches are as even as possible and the last is padded with
/// repeats of its own jobs, so that every step has the same input shape:
/// a smaller last batch would cost a new cuDNN search and a new graph
/// specialisation. The padding's images are dropped.
pub fn batches(todo: &[Job], batch: usize, same_shape: bool) -> Vec<Batch> {
    if todo.is_empty() {
        return Vec::new();
    }
    let batch = batch.max(1);
    let size = if same_shape { todo.len().div_ceil(todo.len().div_ceil(batch)) } else { batch };
    todo.chunks(size)
        .map(|chunk| {
            let mut jobs = chunk.to_vec();
            if same_shape {
                jobs.extend(chunk.iter().cycle().take(size - chunk.len()));
            }
            Batch { jobs, real: chunk.len() }
        })
        .collect()
}

/// One batch of the run: its jobs, and how many are real (the rest pad it).
#[derive(Debug, Clone)]
pub struct Batch {
    pub jobs: Vec<Job>,
    pub real: usize,
}

impl Batch {
    pub fn real(&self) -> &[Job] {
        &self.jobs[..self.real]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(indices: &[i64]) -> Vec<Job> {
        indices.iter().map(|&index| Job { index, facet: None }).collect()
    }

    fn plan(todo: &[i64], batch: usize, same_shape: bool) -> Vec<(Vec<i64>, usize)> {
        batches(&jobs(todo), batch, same_shape)
            .into_iter()
            .map(|b| (b.jobs.iter().map(|j| j.index).collect(), b.real))
            .collect()
    }

    #[test]
    fn cpu_batches_are_plain_chunks() {
        assert_eq!(
            plan(&[1, 2, 3, 4, 5], 2, false),
            vec![(vec![1, 2], 2), (vec![3, 4], 2), (vec![5], 1)]
        );
        assert!(plan(&[], 4, false).is_empty());
    }

    #[test]
    fn cuda_batches_share_one_shape() {
        // 1000 classes at 128: eight batches of 125, none padded.
        let all: Vec<i64> = (0..1000).collect();
        let batches = plan(&all, 128, true);
        assert_eq!(batches.len(), 8);
        assert!(batches.iter().all(|(classes, real)| classes.len() == 125 && *real == 125));
        // 10 classes at 4: three batches of 4, the last padded with its own classes.
        let batches = plan(&(0..10).collect::<Vec<_>>(), 4, true);
        assert_eq!(
            batches,
            vec![(vec![0, 1, 2, 3], 4), (vec![4, 5, 6, 7], 4), (vec![8, 9, 8, 9], 2)]
        );
        assert_eq!(plan(&[7], 64, true), vec![(vec![7], 1)]);
    }
}
