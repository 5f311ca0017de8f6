//! `classviz status`: where a run stands in its output folder. It takes the
//! run's own flags and resolves the same plan, so that it names every image
//! the run would write (classes, units, facets, accentuations) and compares
//! each with the settings it was made with.

use anyhow::Result;
use classviz_records::exit::Status;
use classviz_records::reports::StatusReport;

use crate::commands::load::load_model;
use crate::commands::visualise::{plan::Plan, resume};
use crate::flags::RunArgs;
use crate::printer::Printer;

/// Report the run's targets that are done, missing, or made with other
/// settings. Exit status 0 when all are done, 1 otherwise.
pub fn run(args: &RunArgs) -> Result<Status> {
    let model = load_model(&args.model)?;
    let plan = Plan::resolve(args, &model.info, model.device())?;
    let survey = resume::survey(&plan);
    let stale: Vec<i64> = survey.stale.iter().map(|(index, _)| *index).collect();
    let missing: Vec<i64> =
        survey.todo.iter().copied().filter(|index| !stale.contains(index)).collect();
    let report = StatusReport {
        out: plan.layout.dir().display().to_string(),
        total: plan.mine().len(),
        done: survey.done.len(),
        missing,
        stale,
    };
    Printer::of(&args.output.printing).print(&report)?;
    let all_done = report.missing.is_empty() && report.stale.is_empty();
    Ok(if all_done { Status::Success } else { Status::Failure })
}
