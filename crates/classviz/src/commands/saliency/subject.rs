//! A photo to explain, as the model sees it: its pixels, its class and the
//! random baseline of the faithfulness scores, and its maps.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tch::Tensor;

use super::photo::prepare;
use super::plan::SaliencyPlan;
use classviz_core::attribution::faithfulness::{self, BaselineDraw};
use classviz_core::attribution::{self, Attribution, Attributor};
use classviz_engine::model::Model;
use classviz_records::layout::Target;
use classviz_records::pixels::Photo;
use classviz_records::reports::BoxCoordinates;

pub struct Subject {
    pub path: PathBuf,
    pub photo: Photo,
    /// The photo in the model's space, `[1, C, H, W]`.
    pub x: Tensor,
    pub class: i64,
    pub name: String,
    /// The class, as the layout names it.
    pub target: Target,
    pub prob: f64,
}

impl Subject {
    /// The photo at `path` and its class (the plan's or the model's top-1).
    pub fn of(model: &Model, plan: &SaliencyPlan, path: &Path) -> Result<Subject> {
        let (photo, x, class, prob) = prepare(model, path, plan.fit, plan.class)?;
        let name = model.info.labels.name(class).to_string();
        Ok(Subject {
            path: path.to_path_buf(),
            prob,
            target: Target::Class { index: class, name: name.clone() },
            photo,
            x,
            class,
            name,
        })
    }

    /// What makes the plan's maps of this photo: the tap gradient of the
    /// class activation maps is taken here, so that one that cannot be made
    /// is refused before any map is written.
    pub fn attributor<'a>(
        &'a self,
        model: &'a Model,
        plan: &'a SaliencyPlan,
    ) -> Result<Attributor<'a>> {
        Attributor::new(model, &self.x, self.class, &plan.settings, &plan.attributions)
    }

    /// A draw of the random baseline of the faithfulness scores: at most
    /// `most` random pixel orders, as many as the maps' verdicts need.
    pub fn baseline_draw(&self, plan: &SaliencyPlan, most: usize) -> BaselineDraw {
        BaselineDraw::new(most, faithfulness::RANDOM_ORDER_SEED.wrapping_add(plan.seed))
    }

    /// One attribution's map `[H, W]`, pooled as the method (or `--smooth`) asks.
    pub fn map(
        attributor: &Attributor<'_>,
        plan: &SaliencyPlan,
        attribution: Attribution,
    ) -> Result<Tensor> {
        tch::manual_seed(plan.seed as i64);
        let (_, map) = attributor.attribute(attribution)?;
        attribution::smooth_map(&map, plan.smoothing(attribution.method))
    }

    /// A box in the model's pixels as a box in the original photo's.
    pub fn original_box(&self, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> BoxCoordinates {
        let (left, top) = self.photo.to_original(x0, y0, false);
        let (right, bottom) = self.photo.to_original(x1, y1, true);
        BoxCoordinates { x0: left, y0: top, x1: right, y1: bottom }
    }
}
