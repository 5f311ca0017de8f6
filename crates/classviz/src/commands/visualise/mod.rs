//! The main job: what the network has learned, as images. For each target (a
//! class, or a unit of a tap: a channel, a neuron, a layer) and each of its
//! facets, batch by batch, skipping finished images, with every finished
//! image kept on interruption.

pub mod plan;
pub mod request;
pub mod runner;
pub mod writer;

use anyhow::Result;

use crate::report::{self, Progress};
use classviz_engine::knobs;
use classviz_engine::model;
use classviz_records::exit::Status;
use classviz_records::files;
use classviz_records::gallery::{self, GallerySpec};
use classviz_records::grid;

pub use plan::{Job, Plan};
pub use request::Request;

/// Visualise the requested targets: resolve the plan, skip what is done,
/// optimise the rest batch by batch, then the contact sheet and the gallery.
pub fn run(request: &Request) -> Result<Status> {
    runner::stop_on_signals();
    tch::manual_seed(request.preset.seed as i64);
    files::ensure_writable_dir(&request.output.out_dir)?;
    files::remove_stale_temp_files(&request.output.out_dir)?;
    let model = report::with_warnings(crate::commands::load_model(&request.model)?);
    let plan = Plan::resolve(request, &model.info, model.device())?;

    let mine = plan.mine();
    // A target is done when all its images are there.
    let (todo, done): (Vec<i64>, Vec<i64>) = mine.iter().partition(|&&index| {
        plan.output.force || plan.jobs(index).iter().any(|&job| !plan.path(job).exists())
    });
    let todo_jobs: Vec<Job> = todo.iter().flat_map(|&index| plan.jobs(index)).collect();
    let batches = plan::batches(&todo_jobs, plan.batch, plan.same_shape);
    if let Some(first) = batches.first() {
        classviz_engine::probe::check_batch_fits(
            model.network.as_ref(),
            model.input(),
            first.jobs.len(),
        )?;
    }
    model::enable_cudnn_benchmark(model.device(), batches.len());
    knobs::trace(|| format!("{} batches planned", batches.len()));

    let progress = Progress::new(todo_jobs.len(), plan.ascent.iters, plan.output.quiet);
    report_skipped(&model, &plan, &mine, &done, &progress)?;
    let outcome = runner::run_batches(&model, &plan, &batches, &progress)?;
    progress.finish();
    knobs::trace(|| "all batches written".to_string());

    let totals = &outcome.totals;
    if !totals.stalled.is_empty() {
        progress.note(&format!(
            "{} of {} images stalled ({}); rerun them with --init noise:0.01 --force",
            totals.stalled.len(),
            totals.written,
            totals.stalled.join(", ")
        ));
    }
    write_extras(&plan, &progress)?;
    if outcome.interrupted {
        progress.note(&format!(
            "interrupted: {} of {} images finished and kept; run the same command again to finish the rest",
            totals.written,
            todo_jobs.len()
        ));
        return Ok(Status::Interrupted);
    }
    Ok(Status::Success)
}

/// Say what this shard does and what is already done, and print a result
/// line for each done image (a script asking for them gets a line for each).
fn report_skipped(
    model: &model::Model,
    plan: &Plan,
    mine: &[i64],
    done: &[i64],
    progress: &Progress,
) -> Result<()> {
    if plan.shard != classviz_records::shard::Shard::ALL {
        progress.note(&format!(
            "shard {}: {} of {} targets",
            plan.shard,
            mine.len(),
            plan.targets.len()
        ));
    }
    if done.is_empty() {
        return Ok(());
    }
    progress.note(&format!(
        "skipping {} of {} {} already in {} (--force redoes them)",
        done.len(),
        mine.len(),
        if plan.is_class() { "classes" } else { "units" },
        plan.output.out_dir.display()
    ));
    let done_jobs: Vec<Job> = done.iter().flat_map(|&index| plan.jobs(index)).collect();
    for chunk in done_jobs.chunks(plan.batch) {
        for result in writer::score_existing(model, plan, chunk)? {
            report::print_result(&result, plan.output.json)?;
        }
    }
    Ok(())
}

/// The contact sheet (`--grid`) and the gallery page (`--gallery`).
fn write_extras(plan: &Plan, progress: &Progress) -> Result<()> {
    let out_dir = &plan.output.out_dir;
    if plan.output.grid {
        let entries: Vec<_> = plan
            .targets
            .iter()
            .flat_map(|&index| plan.jobs(index))
            .map(|job| (plan.path(job), plan.label(job)))
            .collect();
        let (path, tiles) = grid::write_grid(out_dir, &entries)?;
        progress.note(&format!("wrote {} ({tiles} tiles)", path.display()));
    }
    if plan.output.gallery {
        let spec = GallerySpec {
            dirs: vec![out_dir.clone()],
            scores: Vec::new(),
            out: out_dir.join(gallery::GALLERY_FILE),
            embed: false,
            title: format!("classviz: {}", out_dir.display()),
        };
        let written = gallery::write_gallery(&spec)?;
        for warning in &written.warnings {
            progress.note(&format!("warning: {warning}"));
        }
        progress.note(&format!("wrote {} ({} rows)", written.path.display(), written.rows));
    }
    Ok(())
}
