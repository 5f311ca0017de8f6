//! The records classviz writes and reads back: each image's result (its
//! `--json` line and its `summary.jsonl` line), the other subcommands' JSON,
//! and the text chunks of every PNG. One definition serves the writer, the
//! gallery and the tests: keys are never spelled out twice.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::classes::Labels;

/// One class in an image's top-k.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ranked {
    pub class: i64,
    pub name: String,
    pub prob: f64,
}

/// What an image shows: a class, or a unit inside the network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Subject {
    Class {
        class: i64,
        name: String,
        /// S_c of the saved image.
        logit: f64,
        /// Softmax probability of class c for the saved image.
        prob: f64,
        top5: Vec<Ranked>,
    },
    Unit {
        /// `channel:TAP:K`, `neuron:TAP:K` or `layer:TAP`, as `--objective` takes it.
        unit: String,
        tap: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<i64>,
        /// The objective (mean activation, …) of the saved image.
        score: f64,
    },
}

/// The result of one image, as printed with `--json` (JSON Lines).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageResult {
    #[serde(flatten)]
    pub subject: Subject,
    pub path: String,
    pub iters: u32,
    pub seconds: f64,
    /// The image was already in `--out`; these scores are of the saved file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// The ascent stalled: the gradient was exactly zero on its last steps, or
    /// the image never moved from its start (e.g. a grey image from the zero start).
    #[serde(default)]
    pub stalled: bool,
    /// With `--facets`: which of the target's images this is (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facet: Option<u32>,
}

impl ImageResult {
    /// What the image shows, for messages: "class 100 (black swan)", "channel:_blocks.3:5".
    pub fn describe(&self) -> String {
        match &self.subject {
            Subject::Class { class, name, .. } => format!("class {class} ({name})"),
            Subject::Unit { unit, .. } => unit.clone(),
        }
    }

    /// The objective of the saved image: S_c for a class, the unit's score.
    pub fn score(&self) -> f64 {
        match &self.subject {
            Subject::Class { logit, .. } => *logit,
            Subject::Unit { score, .. } => *score,
        }
    }

    /// The class, for a class image.
    pub fn class(&self) -> Option<i64> {
        match &self.subject {
            Subject::Class { class, .. } => Some(*class),
            Subject::Unit { .. } => None,
        }
    }

    /// Whether the model's top-1 is the image's class (`None` for units).
    pub fn top1(&self) -> Option<bool> {
        match &self.subject {
            Subject::Class { class, top5, .. } => top5.first().map(|best| best.class == *class),
            Subject::Unit { .. } => None,
        }
    }

    /// The image file's stem (`100_black_swan`), by which folders are compared.
    pub fn stem(&self) -> Option<String> {
        Path::new(&self.path).file_stem().map(|s| s.to_string_lossy().into_owned())
    }
}

/// The top classes as named records.
pub fn ranked(top: &[(i64, f64)], labels: &Labels) -> Vec<Ranked> {
    top.iter()
        .map(|&(class, prob)| Ranked { class, name: labels.name(class).to_string(), prob })
        .collect()
}

/// A target's facets: each one's score and how alike they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FacetSummary {
    /// The class index and name, or the unit (`channel:TAP:K`).
    pub target: String,
    pub facets: u32,
    /// Each facet's objective (S_c for a class), as saved.
    pub scores: Vec<f64>,
    /// Mean pairwise cosine similarity of the facets' Gram matrices at `tap`.
    pub similarity: f64,
    pub tap: String,
    pub diversity: f64,
}

/// The run's parameters, recorded with every summary line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunParams {
    pub model: String,
    pub lr: f64,
    pub l2: f64,
    pub seed: u64,
    pub device: String,
    pub batch: usize,
}

/// One line of `<out>/summary.jsonl`: the `--json` keys plus the run's parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryLine {
    #[serde(flatten)]
    pub result: ImageResult,
    #[serde(flatten)]
    pub params: RunParams,
}

/// The summary file inside `--out`.
pub const SUMMARY_FILE: &str = "summary.jsonl";

/// What `classviz status` reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub out: String,
    pub total: usize,
    pub done: usize,
    pub missing: Vec<i64>,
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
    pub taps: Vec<crate::metadata::Tap>,
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

/// The text chunks of a class image's PNG: enough to reproduce the run.
/// Written by the visualise command and read back for skipped images.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PngRecord {
    pub model: String,
    /// `Some((class, name))` for a class image.
    pub class: Option<(i64, String)>,
    /// `Some((objective, unit))` for a unit image.
    pub unit: Option<(String, i64)>,
    pub iters: u32,
    pub lr: f64,
    pub l2: f64,
    pub seed: u64,
    /// The style's settings (its Debug form).
    pub style: String,
    pub init: Option<String>,
    /// "j of N, diversity W at TAP".
    pub facet: Option<String>,
}

impl PngRecord {
    /// The text chunks, in order.
    pub fn to_text(&self) -> Vec<(String, String)> {
        let version = env!("CARGO_PKG_VERSION").to_string();
        let mut text =
            vec![("Software", format!("classviz {version}")), ("model", self.model.clone())];
        if let Some((class, name)) = &self.class {
            text.push(("class", class.to_string()));
            text.push(("class_name", name.clone()));
        }
        if let Some((objective, unit)) = &self.unit {
            text.push(("objective", objective.clone()));
            text.push(("unit", unit.to_string()));
        }
        text.extend([
            ("iters", self.iters.to_string()),
            ("lr", self.lr.to_string()),
            ("l2", self.l2.to_string()),
            ("seed", self.seed.to_string()),
            ("version", version),
            ("style", self.style.clone()),
        ]);
        text.extend(self.init.iter().map(|init| ("init", init.clone())));
        text.extend(self.facet.iter().map(|facet| ("facet", facet.clone())));
        text.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
    }

    /// The recorded step count, from a PNG's text chunks.
    pub fn iters_of(text: &[(String, String)]) -> Option<u32> {
        text.iter().find(|(key, _)| key == "iters").and_then(|(_, value)| value.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_result() -> ImageResult {
        ImageResult {
            subject: Subject::Class {
                class: 100,
                name: "black swan".into(),
                logit: 42.5,
                prob: 0.99,
                top5: vec![Ranked { class: 100, name: "black swan".into(), prob: 0.99 }],
            },
            path: "results/100_black_swan.png".into(),
            iters: 150,
            seconds: 3.25,
            skipped: false,
            stalled: false,
            facet: None,
        }
    }

    fn keys(value: &serde_json::Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_class_line_has_the_documented_keys() {
        let value = serde_json::to_value(class_result()).unwrap();
        assert_eq!(
            keys(&value),
            ["class", "iters", "logit", "name", "path", "prob", "seconds", "stalled", "top5"]
        );
        assert_eq!(value["top5"][0]["class"], 100);
    }

    #[test]
    fn a_unit_line_has_the_documented_keys() {
        let unit = ImageResult {
            subject: Subject::Unit {
                unit: "channel:t:5".into(),
                tap: "t".into(),
                channel: Some(5),
                score: 1.5,
            },
            facet: Some(1),
            skipped: true,
            ..class_result()
        };
        let value = serde_json::to_value(&unit).unwrap();
        assert_eq!(
            keys(&value),
            [
                "channel", "facet", "iters", "path", "score", "seconds", "skipped", "stalled",
                "tap", "unit"
            ]
        );
    }

    #[test]
    fn summary_lines_round_trip() {
        let params = RunParams {
            model: "m.pt".into(),
            lr: 1.0,
            l2: 1e-4,
            seed: 0,
            device: "cpu".into(),
            batch: 4,
        };
        let line = SummaryLine { result: class_result(), params };
        let text = serde_json::to_string(&line).unwrap();
        let back: SummaryLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        assert_eq!(back.result.top1(), Some(true));
        assert_eq!(back.result.stem().as_deref(), Some("100_black_swan"));
    }

    #[test]
    fn png_records_write_their_keys_in_order() {
        let record = PngRecord {
            model: "m.pt".into(),
            class: Some((1, "one".into())),
            iters: 7,
            lr: 0.25,
            ..PngRecord::default()
        };
        let text = record.to_text();
        let keys: Vec<&str> = text.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Software",
                "model",
                "class",
                "class_name",
                "iters",
                "lr",
                "l2",
                "seed",
                "version",
                "style"
            ]
        );
        assert_eq!(PngRecord::iters_of(&text), Some(7));
    }
}
