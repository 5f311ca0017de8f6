//! The main job: what the network has learned, as images. For each target (a
//! class, or a unit of a tap: a channel, a neuron, a layer) and each of its
//! facets, batch by batch, skipping images made with these same settings and
//! refusing to hand back ones made with others, with every finished image
//! kept on interruption.

pub mod names;
pub mod plan;
pub mod provenance;
pub mod resume;
pub mod runner;
pub mod settings;
pub mod writer;

use anyhow::Result;
use classviz_engine::knobs;
use classviz_engine::model::{self, Model};
use classviz_records::exit::Status;
use classviz_records::files;
use classviz_records::gallery::{self, GallerySpec};
use classviz_records::grid;
use classviz_records::reports::{DryRunReport, Skipped};

use crate::commands::load::load_model;
use crate::flags::RunArgs;
use crate::printer::{Printer, Progress};

pub use names::Job;
pub use plan::Plan;
use resume::Survey;

/// Visualise the targets: resolve the plan, survey the folder, optimise what
/// is to do batch by batch, then the contact sheet and the gallery.
pub fn run(args: &RunArgs) -> Result<Status> {
    let printer = Printer::of(&args.output.printing);
    runner::stop_on_signals();
    if !args.output.dry_run {
        files::ensure_writable_dir(&args.output.out)?;
        files::remove_stale_temp_files(&args.output.out)?;
    }
    let model = load_model(&args.model)?;
    let plan = Plan::resolve(args, &model.info, model.device())?;
    let survey = resume::survey(&plan);
    if args.output.dry_run {
        printer.print(&dry_run(&model, &plan, &survey))?;
        return Ok(Status::Success);
    }
    survey.refuse_stale(&plan)?;
    let todo: Vec<Job> = survey.todo.iter().flat_map(|&index| plan.jobs(index)).collect();
    let batches = runner::batches(&todo, plan.batch, plan.same_shape);
    if let Some(first) = batches.first() {
        classviz_engine::probe::check_batch_fits(
            model.network.as_ref(),
            model.input(),
            first.jobs.len(),
        )?;
    }
    model::enable_cudnn_benchmark(model.device(), batches.len());
    knobs::trace(|| format!("{} batches planned", batches.len()));
    let progress = Progress::new(todo.len(), plan.ascent.iters, args.output.printing.quiet);
    plan.notes.iter().for_each(|note| progress.note(note));
    report_skipped(&model, &plan, &survey, &progress, &printer)?;
    let outcome = runner::run_batches(&model, &plan, &batches, &progress, &printer)?;
    progress.finish();
    knobs::trace(|| "all batches written".to_string());
    finish(&plan, &outcome, todo.len(), &progress)
}

/// The stalled images' note, the extras, and the status: interrupted or done.
fn finish(
    plan: &Plan,
    outcome: &runner::Outcome,
    todo: usize,
    progress: &Progress,
) -> Result<Status> {
    let totals = &outcome.totals;
    if !totals.stalled.is_empty() {
        progress.note(&format!(
            "{} of {} images stalled ({}); rerun them with --init noise:0.01 --force",
            totals.stalled.len(),
            totals.written,
            totals.stalled.join(", ")
        ));
    }
    write_extras(plan, progress)?;
    if outcome.interrupted {
        progress.note(&format!(
            "interrupted: {} of {todo} images finished and kept; run the same command again to finish the rest",
            totals.written
        ));
        return Ok(Status::Interrupted);
    }
    Ok(Status::Success)
}

/// `--dry-run`: the plan, and what the run would write and skip.
fn dry_run(model: &Model, plan: &Plan, survey: &Survey) -> DryRunReport {
    let paths = |targets: &[i64]| -> Vec<String> {
        targets
            .iter()
            .flat_map(|&index| plan.jobs(index))
            .map(|job| plan.path(job).display().to_string())
            .collect()
    };
    let mut skip: Vec<Skipped> = paths(&survey.done)
        .into_iter()
        .map(|path| Skipped { path, why: "made with these settings already".to_string() })
        .collect();
    skip.extend(survey.stale.iter().filter(|_| !plan.output.force).map(|(_, stale)| Skipped {
        path: stale.path.display().to_string(),
        why: format!(
            "made with other settings: {} (the run refuses; --force)",
            stale.differences.join(", ")
        ),
    }));
    DryRunReport {
        model: plan.model.clone(),
        device: plan.summary.device.clone(),
        engine: model.network.engine(),
        batch: plan.batch,
        preset: plan.preset.to_string(),
        settings: plan.provenance.clone(),
        write: paths(&survey.todo),
        skip,
    }
}

/// Say what this shard does and what is already done, and print a result
/// line for each done image (a script asking for them gets a line for each).
fn report_skipped(
    model: &Model,
    plan: &Plan,
    survey: &Survey,
    progress: &Progress,
    printer: &Printer,
) -> Result<()> {
    let mine = plan.mine();
    if plan.shard != classviz_records::shard::Shard::ALL {
        progress.note(&format!(
            "shard {}: {} of {} targets",
            plan.shard,
            mine.len(),
            plan.targets.len()
        ));
    }
    if survey.done.is_empty() {
        return Ok(());
    }
    progress.note(&format!(
        "skipping {} of {} {} already in {}, made with these settings (--force redoes them)",
        survey.done.len(),
        mine.len(),
        if plan.is_class() { "classes" } else { "units" },
        plan.layout.dir().display()
    ));
    let done: Vec<Job> = survey.done.iter().flat_map(|&index| plan.jobs(index)).collect();
    for chunk in done.chunks(plan.batch) {
        for result in writer::score_existing(model, plan, chunk)? {
            printer.print(&result)?;
        }
    }
    Ok(())
}

/// The contact sheet (`--grid`) and the gallery page (`--gallery`).
fn write_extras(plan: &Plan, progress: &Progress) -> Result<()> {
    if plan.output.grid {
        let entries: Vec<_> = plan
            .targets
            .iter()
            .flat_map(|&index| plan.jobs(index))
            .map(|job| (plan.path(job), plan.name(job).label()))
            .collect();
        let (path, tiles) = grid::write_grid(&plan.layout.grid(), &entries)?;
        progress.note(&format!("wrote {} ({tiles} tiles)", path.display()));
    }
    if plan.output.gallery {
        let dir = plan.layout.dir();
        let spec = GallerySpec {
            dirs: vec![dir.to_path_buf()],
            scores: Vec::new(),
            out: plan.layout.gallery(),
            embed: false,
            title: format!("classviz: {}", dir.display()),
        };
        let written = gallery::write_gallery(&spec)?;
        for warning in &written.warnings {
            progress.note(&format!("warning: {warning}"));
        }
        progress.note(&format!("wrote {} ({} rows)", written.page, written.rows));
    }
    Ok(())
}
