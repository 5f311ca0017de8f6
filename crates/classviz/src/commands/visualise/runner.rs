//! The batches of a run: each optimised on this thread while a writer thread
//! writes the one before, until done or interrupted (Ctrl-C, SIGTERM: the
//! batch in flight is dropped and every finished one is written).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::commands::visualise::plan::{Batch, Plan};
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

fn stop_requested() -> bool {
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
        Ended::Finished(ascent) => Ok(Some(Finished::from_ascent(batch, ascent, started)?)),
        Ended::Stopped => Ok(None),
    }
}
