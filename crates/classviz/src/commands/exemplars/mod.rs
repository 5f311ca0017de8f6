//! `classviz exemplars`: the images of a folder that drive a class or a unit
//! most (and, asked, least), shown as a contact sheet per target beside its
//! visualisation (Borowski et al. 2021: people predict a unit better from
//! them than from a visualisation alone). One pass over the folder serves
//! every target; it resumes where an interrupted scan stopped, and shards
//! (`--shard K/N`, then `--merge N`) give what one scan gives.
//!
//! - `plan`: the scan resolved once;
//! - `scan`: the images through the model, and the scan's saved state;
//! - `write`: sheets, `exemplars.jsonl` and the records.

mod plan;
mod scan;
mod write;

use std::time::Instant;

use anyhow::{bail, Result};
use classviz_records::exit::Status;
use classviz_records::files;
use classviz_records::reports::ExemplarsSummary;

use crate::commands::load::load_model;
use crate::commands::visualise::runner::stop_on_signals;
use crate::flags::ExemplarsArgs;
use crate::printer::{Printer, Progress};
use plan::ExemplarsPlan;
use scan::ScanState;

pub fn run(args: &ExemplarsArgs) -> Result<Status> {
    let printer = Printer::of(&args.printing);
    stop_on_signals();
    let model = load_model(&args.model)?;
    let plan = ExemplarsPlan::resolve(args, &model.info, model.device())?;
    files::ensure_writable_dir(plan.layout.dir())?;
    let started = Instant::now();
    let progress = Progress::items(plan.mine.len(), "images", args.printing.quiet);
    let state = match args.merge {
        Some(count) => merged(&plan, count)?,
        None => {
            let path = plan.layout.exemplars_state(plan.shard);
            let mut state = ScanState::resume(&plan, &path, args.force, &progress)?;
            if !scan::scan(&model, &plan, &mut state, &path, &progress)? {
                progress.finish();
                progress.note(&format!(
                    "interrupted after {} of {} images; the same command continues the scan",
                    state.done,
                    plan.mine.len()
                ));
                return Ok(Status::Interrupted);
            }
            state
        }
    };
    progress.finish();
    if let Some((index, count)) = plan.shard {
        progress.note(&format!(
            "shard {index}/{count} scanned; `--merge {count}` (without --shard) writes the results"
        ));
        return Ok(Status::Success);
    }
    let read = plan.images.len() - state.skipped.len();
    if read == 0 {
        bail!(
            "no image under {} could be read ({} skipped)",
            plan.folder.display(),
            state.skipped.len()
        );
    }
    write::results(&model, &plan, &state.keepers, read, &printer)?;
    let seconds = if args.merge.is_some() {
        state.seconds
    } else {
        started.elapsed().as_secs_f64().max(state.seconds)
    };
    printer.print(&ExemplarsSummary {
        folder: plan.folder.display().to_string(),
        images: read,
        skipped: state.skipped.clone(),
        targets: plan.targets.len(),
        seconds,
        images_per_second: plan.images.len() as f64 / seconds.max(1e-9),
    })?;
    Ok(Status::Success)
}

/// Every shard's finished scan combined: what one scan of the whole folder gives.
fn merged(plan: &ExemplarsPlan, count: usize) -> Result<ScanState> {
    let mut total: Option<ScanState> = None;
    for index in 0..count {
        let path = plan.layout.exemplars_state(Some((index, count)));
        let shard: ScanState = match files::read_text(&path, "a shard's exemplar scan") {
            Ok(text) => serde_json::from_str(&text)?,
            Err(_) => bail!(
                "--merge {count}: shard {index}/{count} has not been scanned here ({} is missing)",
                path.display()
            ),
        };
        let expected = (0..plan.images.len()).filter(|i| i % count == index).count();
        if shard.key != plan.key || shard.done < expected {
            bail!("--merge {count}: shard {index}/{count} is unfinished or was scanned with other flags, model or images: run it again with --shard {index}/{count}");
        }
        match &mut total {
            None => total = Some(shard),
            Some(total) => {
                for (keeper, other) in total.keepers.iter_mut().zip(&shard.keepers) {
                    keeper.merge(other);
                }
                total.skipped.extend(shard.skipped);
                total.seconds += shard.seconds;
                total.done += shard.done;
            }
        }
    }
    let mut total = total.expect("at least one shard");
    total.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(total)
}
