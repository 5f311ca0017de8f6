//! What the command line asked of a visualisation run, typed and grouped as
//! `--help` shows it, with nothing resolved: every `None` is "the preset's
//! value", decided by the plan.

use std::path::PathBuf;

use classviz_core::ascent::InitSpec;
use classviz_core::objective::ObjectiveSpec;
use classviz_core::optim::OptimizerKind;
use classviz_core::param::{Colour, Param};
use classviz_core::presets::PresetName;
use classviz_engine::model::ModelRequest;
use classviz_engine::precision::Precision;
use classviz_records::classes::ClassSelection;
use classviz_records::pixels::Fit;
use classviz_records::shard::ShardSpec;

/// A visualisation run as asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub objective: ObjectiveRequest,
    pub preset: PresetRequest,
    pub optimiser: OptimiserRequest,
    pub transforms: TransformRequest,
    pub maco: MacoRequest,
    pub output: OutputRequest,
    pub model: ModelRequest,
    pub scale_out: ScaleOutRequest,
}

/// What the images maximise.
#[derive(Debug, Clone, Default)]
pub struct ObjectiveRequest {
    /// The classes, for class objectives.
    pub classes: ClassSelection,
    pub objective: ObjectiveSpec,
    /// For channel and neuron objectives: `--channels` as written (e.g. `0-15`).
    pub channels: Option<String>,
    pub facets: Option<u32>,
    pub diversity: f64,
    pub diversity_tap: Option<String>,
    /// `--accentuate W`: keep the image near its `--init image:` photo.
    pub accentuate: Option<f64>,
    /// `--tap NAME`: where accentuation compares features (pixels without one).
    pub tap: Option<String>,
}

/// The preset and the settings every preset has.
#[derive(Debug, Clone)]
pub struct PresetRequest {
    pub preset: PresetName,
    pub iters: Option<u32>,
    pub lr: Option<f64>,
    pub l2: Option<f64>,
    pub init: Option<InitSpec>,
    /// How an `--init image:` photo is fitted to the canvas.
    pub fit: Fit,
    pub seed: u64,
}

/// What is optimised and how.
#[derive(Debug, Clone, Default)]
pub struct OptimiserRequest {
    pub param: Option<Param>,
    pub colour: Option<Colour>,
    pub decay: Option<f64>,
    pub optimizer: Option<OptimizerKind>,
    pub blur_every: Option<u32>,
    pub blur_sigma: Option<f64>,
    pub clip_percentile: Option<f64>,
    pub tv: Option<f64>,
    pub precision: Precision,
}

/// The random views of each step.
#[derive(Debug, Clone, Default)]
pub struct TransformRequest {
    pub views: Option<u32>,
    pub jitter: Option<u32>,
    pub scale: Option<Vec<f64>>,
    pub rotate: Option<f64>,
    pub pad: Option<u32>,
    pub view_noise: Option<f64>,
}

/// MaCo's canvas, crops and spectrum.
#[derive(Debug, Clone, Default)]
pub struct MacoRequest {
    pub canvas: Option<f64>,
    pub crop_box: Option<(f64, f64)>,
    pub alpha: bool,
    /// `None`: the default spectrum, found like the default model.
    pub magnitude: Option<PathBuf>,
}

/// Where results go and how they look.
#[derive(Debug, Clone, Default)]
pub struct OutputRequest {
    pub out_dir: PathBuf,
    pub force: bool,
    pub grid: bool,
    pub gallery: bool,
    pub save_every: Option<u32>,
    pub gif: bool,
    pub stretch: bool,
    pub quiet: bool,
    pub json: bool,
}

/// Batching and sharding.
#[derive(Debug, Clone, Default)]
pub struct ScaleOutRequest {
    /// Images per forward/backward pass; `None` picks the device's default.
    pub batch: Option<usize>,
    pub shard: Option<ShardSpec>,
}
