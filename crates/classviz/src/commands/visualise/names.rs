//! What a run writes, by name: its jobs (a target and, with facets, which
//! one), what each shows, its file through the layout, and its PNG's text.

use std::path::PathBuf;

use classviz_core::ascent::Init;
use classviz_core::objective::Objective;
use classviz_records::layout::{self, ImageName, Target, Unit};
use classviz_records::png_text::PngRecord;

use super::plan::Plan;

/// One image of the run: its target (a class, or a channel of the tap) and,
/// with `--facets`, which facet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub index: i64,
    pub facet: Option<u32>,
}

impl Plan {
    fn objective(&self) -> &Objective {
        &self.ascent.objective
    }

    /// Whether the images are of classes (not units).
    pub fn is_class(&self) -> bool {
        self.objective().is_class()
    }

    /// This shard's targets.
    pub fn mine(&self) -> Vec<i64> {
        self.shard.select(&self.targets)
    }

    /// A target's jobs: one, or one per facet.
    pub fn jobs(&self, index: i64) -> Vec<Job> {
        match &self.ascent.facets {
            Some(facets) => (0..facets.count).map(|f| Job { index, facet: Some(f) }).collect(),
            None => vec![Job { index, facet: None }],
        }
    }

    /// What a target shows, for the layout.
    pub fn target(&self, index: i64) -> Target {
        let unit = |unit| Target::Unit {
            tap: self.objective().tap().map(|t| t.name.clone()).unwrap_or_default(),
            unit,
        };
        match self.objective() {
            Objective::Channel(_) => unit(Unit::Channel(index)),
            Objective::Neuron(_) => unit(Unit::Neuron(index)),
            Objective::Layer(_) => unit(Unit::Layer),
            _ => Target::Class { index, name: self.labels.name(index).to_string() },
        }
    }

    /// A job's image name: its target, its facet, and the photo an
    /// accentuation starts from.
    pub fn name(&self, job: Job) -> ImageName {
        let photo = match &self.ascent.init {
            Some(Init::Photo(photo)) => Some(layout::photo_stem(&photo.path)),
            _ => None,
        };
        ImageName { target: self.target(job.index), facet: job.facet, photo }
    }

    pub fn path(&self, job: Job) -> PathBuf {
        self.layout.image(&self.name(job))
    }

    /// The text chunks of a job's PNG: enough to reproduce the run, and its provenance.
    pub fn png_record(&self, job: Job) -> PngRecord {
        let (class, unit) = if self.is_class() {
            (Some((job.index, self.labels.name(job.index).to_string())), None)
        } else {
            (None, Some((self.objective().to_string(), job.index)))
        };
        let facet = job.facet.zip(self.ascent.facets.as_ref()).map(|(facet, facets)| {
            format!(
                "{facet} of {}, diversity {} at {}",
                facets.count, facets.weight, facets.tap.name
            )
        });
        PngRecord {
            model: self.model.clone(),
            class,
            unit,
            facet,
            provenance: self.provenance.clone(),
        }
    }
}
