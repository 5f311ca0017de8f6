//! What the subcommands other than the main one report: `--dry-run`'s plan,
//! `status`, `score`, `info`, and `saliency`'s maps and sanity checks. Each
//! is printed as a human line or a JSON line by the binary's one printer.

use serde::{Deserialize, Serialize};

use crate::provenance::Provenance;
use crate::result::Ranked;

/// What `--dry-run` prints: the run resolved, and what it would write and skip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DryRunReport {
    pub model: String,
    pub device: String,
    /// What runs the network: "torchscript", or a compiled package.
    pub engine: String,
    pub batch: usize,
    pub preset: String,
    /// Every resolved setting, as each image would record it.
    pub settings: Provenance,
    /// Images the run would write.
    pub write: Vec<String>,
    /// Images it would skip, and why.
    pub skip: Vec<Skipped>,
}

/// An image a run would not make.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Skipped {
    pub path: String,
    pub why: String,
}

/// What `saliency --dry-run` prints for each photo: its class, the methods
/// and the files they would write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SaliencyPlanRow {
    pub image: String,
    pub class: i64,
    pub name: String,
    pub methods: Vec<String>,
    pub write: Vec<String>,
}

/// What `classviz status` reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub out: String,
    pub total: usize,
    pub done: usize,
    /// Targets (classes, or a tap's channels) with an image missing.
    pub missing: Vec<i64>,
    /// Targets whose images were made with other settings than these.
    #[serde(default)]
    pub stale: Vec<i64>,
}

/// A box in original-image pixels: `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct BoxCoordinates {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// One image scored by `classviz score`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreRow {
    pub image: String,
    pub class: i64,
    pub name: String,
    /// Probability of the intended class.
    pub prob: f64,
    pub top1: bool,
    pub top5: bool,
    /// The model's five best classes.
    pub predicted: Vec<Ranked>,
}

/// A `classviz score --json` run: its rows and totals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreTotals {
    pub model: String,
    pub images: Vec<ScoreRow>,
    pub total: usize,
    pub top1: usize,
    pub top5: usize,
    pub mean_prob: f64,
}

impl ScoreTotals {
    pub fn of(model: &str, rows: Vec<ScoreRow>) -> ScoreTotals {
        ScoreTotals {
            model: model.to_string(),
            total: rows.len(),
            top1: rows.iter().filter(|r| r.top1).count(),
            top5: rows.iter().filter(|r| r.top5).count(),
            mean_prob: rows.iter().map(|r| r.prob).sum::<f64>() / rows.len().max(1) as f64,
            images: rows,
        }
    }
}

/// What `classviz info` reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InfoReport {
    pub model: String,
    /// `[C, H, W]`.
    pub input_shape: Vec<i64>,
    /// "sidecar", "flags" or "probing".
    pub input_source: String,
    pub classes: usize,
    /// Where the class names came from; `None` when classes are named by index.
    pub labels: Option<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The output selector in effect, if the model returns a tuple, list or dict.
    pub output: Option<String>,
    pub outputs_probabilities: bool,
    /// Trainable parameter count (0 for a frozen export: its weights are graph constants).
    pub parameters: i64,
    pub device: String,
    pub dtype: String,
    /// One forward+backward pass on a single image (median of `timing_runs`).
    pub forward_backward_ms: f64,
    pub timing_runs: usize,
    /// Intermediate activations the model returns, with their shapes (`[C, H, W]`,
    /// or `[T, C]` for tokens, which classviz reshapes to a grid).
    pub taps: Vec<crate::sidecar::Tap>,
    /// What runs the network: "torchscript", or a compiled package.
    #[serde(default)]
    pub engine: String,
}

/// One photo's saliency result, as printed with `--json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SaliencyResult {
    pub image: String,
    pub class: i64,
    pub name: String,
    /// The model's probability of `class` for the photo.
    pub prob: f64,
    pub method: String,
    /// σ in pixels of the Gaussian that pooled the map before ranking.
    pub smoothing: f64,
    /// For class activation maps: the tap they were taken at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<String>,
    pub saliency: String,
    pub overlay: String,
    /// The raw map, 16-bit grayscale.
    pub raw: String,
    /// Seconds to make the map (its forward and backward passes).
    #[serde(default)]
    pub seconds: f64,
    /// With `--faithfulness`: how the map's pixel order scores against random orders.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<FaithfulnessScores>,
    /// With several methods: the sheet comparing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#box: Option<BoxCoordinates>,
    /// With `--segment`: the object mask (§3.1) and the box of its largest part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_box: Option<BoxCoordinates>,
}

/// A map's faithfulness (`saliency --faithfulness`): its deletion and
/// insertion areas and the random baseline's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaithfulnessScores {
    /// Deletion (Petsiuk et al. 2018): area under the target probability as
    /// pixels are removed most-salient first, 5% per step. Lower is better.
    pub deletion_auc: f64,
    /// Insertion (same source): area under the target probability as the
    /// photo's pixels are restored into a blurred copy, most-salient first.
    /// Higher is better.
    pub insertion_auc: f64,
    /// The mean deletion area of `random_orders` random pixel orders.
    pub random_auc: f64,
    pub random_deletion_std: f64,
    /// The mean insertion area of the same random orders.
    pub random_insertion_auc: f64,
    pub random_insertion_std: f64,
    pub random_orders: usize,
    /// Lower deletion and higher insertion than the random mean.
    pub beats_random: bool,
    /// Seconds the scores took (the map's curves, and the baseline if this
    /// map was the first of its photo to need it).
    pub faithfulness_seconds: f64,
}

/// One line of `saliency --sanity`: a method's map on the trained model
/// against its map on the model with its top `depth` blocks re-initialised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SanityResult {
    pub image: String,
    pub class: i64,
    pub name: String,
    pub method: String,
    /// Blocks re-initialised, counted from the top.
    pub depth: u32,
    pub blocks: Vec<String>,
    /// Spearman's rank correlation of the two maps' pixels.
    pub spearman: f64,
    /// The maps' structural similarity (each scaled to [0, 1]).
    pub ssim: f64,
    /// ρ at or above the flag threshold: the map barely changed, so it shows
    /// the image more than what the network learned.
    pub unchanged: bool,
}

/// One image among a target's dataset exemplars.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exemplar {
    pub image: String,
    /// The target's activation: S_c for a class, the channel's mean or the
    /// neuron's value for a unit.
    pub activation: f64,
    /// For a unit at a spatial tap: the receptive field, in the original
    /// image's pixels, of the position where the unit fires most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#box: Option<BoxCoordinates>,
}

/// What `classviz exemplars` writes per target (a line of `exemplars.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExemplarsResult {
    /// `class 100 (black swan)`, `channel:_blocks.8:5`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<i64>,
    /// The contact sheet of its best images.
    pub sheet: String,
    /// The images that drive it most, best first.
    pub top: Vec<Exemplar>,
    /// With `--bottom`: those that drive it least, least first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bottom: Vec<Exemplar>,
    /// Images scanned.
    pub images: usize,
}

/// The end of an exemplar scan: what was read and skipped, and how fast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExemplarsSummary {
    pub folder: String,
    pub images: usize,
    /// Files that could not be read as images, each with why.
    pub skipped: Vec<Skipped>,
    pub targets: usize,
    pub seconds: f64,
    pub images_per_second: f64,
}
