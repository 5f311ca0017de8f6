//! Resume with provenance: which of a run's targets are already in its
//! folder, made with exactly this run's settings (skipped), missing (made),
//! or made with other settings (refused, unless `--force`). `status` and
//! `--dry-run` report the same survey.

use std::path::PathBuf;

use anyhow::Result;
use classviz_records::exit::usage_error;
use classviz_records::pixels;
use classviz_records::provenance::Provenance;

use crate::commands::visualise::plan::Plan;

/// Where each of a shard's targets stands.
#[derive(Debug, Default)]
pub struct Survey {
    /// Every image there, made with these settings.
    pub done: Vec<i64>,
    /// An image missing (or `--force`): the run makes them all.
    pub todo: Vec<i64>,
    /// An image there made with other settings: the first such image of
    /// each target and what differs.
    pub stale: Vec<(i64, Stale)>,
}

/// An image made with other settings.
#[derive(Debug, Clone)]
pub struct Stale {
    pub path: PathBuf,
    /// Each setting that differs, `setting then (now now)`.
    pub differences: Vec<String>,
}

/// What the image at `path` holds, against this run's provenance.
enum Found {
    Missing,
    Same,
    Other(Vec<String>),
}

fn found(plan: &Plan, path: PathBuf) -> Found {
    if !path.exists() {
        return Found::Missing;
    }
    let text = pixels::read_png_text(&path).unwrap_or_default();
    match Provenance::of_text(&text) {
        Some(then) if then == plan.provenance => Found::Same,
        Some(then) => Found::Other(then.differences(&plan.provenance)),
        None => Found::Other(vec!["its settings, which it does not record (an older classviz made it, or another program)".to_string()]),
    }
}

/// Survey this shard's targets in the plan's folder. With `--force` every
/// target is to do; a stale one is still reported.
pub fn survey(plan: &Plan) -> Survey {
    let mut survey = Survey::default();
    for index in plan.mine() {
        let mut state = Found::Same;
        for job in plan.jobs(index) {
            let path = plan.path(job);
            match found(plan, path.clone()) {
                Found::Same => {}
                Found::Missing => state = Found::Missing,
                Found::Other(differences) => {
                    survey.stale.push((index, Stale { path, differences }));
                    state = Found::Other(Vec::new());
                    break;
                }
            }
        }
        match state {
            Found::Same if !plan.output.force => survey.done.push(index),
            Found::Other(_) if !plan.output.force => {}
            _ => survey.todo.push(index),
        }
    }
    survey
}

impl Survey {
    /// A run never hands back an image made with other settings: without
    /// `--force` a stale image is a usage error (exit 2) naming what differs.
    pub fn refuse_stale(&self, plan: &Plan) -> Result<()> {
        let Some((_, first)) = self.stale.first() else { return Ok(()) };
        if plan.output.force {
            return Ok(());
        }
        let more = match self.stale.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Err(usage_error(format!(
            "{} was made with other settings{more}: {}; --force makes it again with these, or choose another --out",
            first.path.display(),
            first.differences.join(", ")
        )))
    }
}
