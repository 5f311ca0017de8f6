//! `classviz saliency`: which pixels of a photo decide the class (Simonyan et
//! al. §3), with maps, overlays and faithfulness scores against random
//! orders; class activation maps at a tap; the paper's §3.1 segmentation
//! (`--segment`); and the cascading randomisation test of every method
//! (`--sanity`; Adebayo et al. 2018). Every file carries its method's name,
//! so that runs of different methods into one folder keep each other's maps.
//!
//! - `plan`: the run resolved once, and every file's name;
//! - `subject`: a photo as the model sees it, its class and baseline;
//! - `maps`: one map's files and its record;
//! - `sanity`: the randomisation test.

mod maps;
mod photo;
mod plan;
mod sanity;
mod subject;

use std::time::Instant;

use anyhow::Result;

use classviz_engine::model::Model;
use classviz_records::exit::Status;
use classviz_records::files;
use classviz_records::grid;
use classviz_records::pixels::{self, Pixels};
use classviz_records::reports::SaliencyPlanRow;

use crate::commands::load::load_model;
use crate::flags::SaliencyArgs;
use crate::printer::{Printer, Progress};
use plan::SaliencyPlan;
use subject::Subject;

/// For each photo and method: the map, its overlay and the raw 16-bit map,
/// written as soon as it is made; with `--faithfulness`, then its deletion
/// and insertion scores against the photo's random baseline; with several
/// methods also a sheet comparing them. With `--sanity`, the randomisation
/// test instead; with `--dry-run`, what would be written.
pub fn run(args: &SaliencyArgs) -> Result<Status> {
    let printer = Printer::of(&args.printing);
    let model = load_model(&args.model)?;
    let plan = SaliencyPlan::resolve(args, &model)?;
    if args.dry_run {
        return dry_run(&plan, &model, &printer);
    }
    files::ensure_writable_dir(plan.layout.dir())?;
    if args.sanity {
        return sanity::check(&plan, &model, &args.model, &printer);
    }
    let progress =
        Progress::items(plan.photos.len() * plan.attributions.len(), "maps", args.printing.quiet);
    for path in &plan.photos {
        let subject = Subject::of(&model, &plan, path)?;
        explain(&plan, &model, &subject, &progress, &printer)?;
    }
    progress.finish();
    Ok(Status::Success)
}

/// Every method's maps of one photo, and the sheet comparing them.
fn explain(
    plan: &SaliencyPlan,
    model: &Model,
    subject: &Subject,
    progress: &Progress,
    printer: &Printer,
) -> Result<()> {
    let attributor = subject.attributor(model, plan)?;
    let sheet = plan.sheet(&subject.path, &subject.target);
    let mut tiles = vec![("photo".to_string(), subject.photo.pixels.to_rgb())];
    let mut draw = plan.faithfulness.map(|most| subject.baseline_draw(plan, most));
    for &attribution in &plan.attributions {
        let started = Instant::now();
        let map = Subject::map(&attributor, plan, attribution)?;
        let seconds = started.elapsed().as_secs_f64();
        let written = maps::write(plan, subject, attribution.method, &map)?;
        let scores = match &mut draw {
            Some(draw) => Some(maps::faithfulness(model, subject, &map, draw)?),
            None => None,
        };
        tiles.push((
            maps::tile_label(attribution.method, scores.as_ref()),
            written.overlay_image.clone(),
        ));
        let mut result = maps::record(subject, plan, model, attribution, seconds, scores, &written);
        result.sheet = sheet.as_ref().map(|s| s.display().to_string());
        if plan.segment {
            maps::segmented(plan, subject, &map, attribution.method, &mut result)?;
        }
        printer.print(&result)?;
        progress.items_done(1);
    }
    if let Some(sheet) = sheet {
        let composed = grid::compose(&tiles, Some(tiles.len() as u32));
        pixels::write_png_atomic(&sheet, &Pixels::from_rgb(composed), &[])?;
    }
    Ok(())
}

/// `--dry-run`: each photo's class, and the files the plan would write.
fn dry_run(plan: &SaliencyPlan, model: &Model, printer: &Printer) -> Result<Status> {
    for path in &plan.photos {
        let subject = Subject::of(model, plan, path)?;
        printer.print(&SaliencyPlanRow {
            image: path.display().to_string(),
            class: subject.class,
            name: subject.name.clone(),
            methods: plan.attributions.iter().map(|a| a.method.to_string()).collect(),
            write: plan
                .files(path, &subject.target)
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        })?;
    }
    Ok(Status::Success)
}
