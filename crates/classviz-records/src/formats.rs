//! The records classviz writes and reads back: each image's result (its
//! `--json` line and its `summary.jsonl` line), the other subcommands' JSON,
//! and the text chunks of every PNG. One definition serves the writer, the
//! gallery and the tests: keys are never spelled out twice.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
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

impl SummaryLine {
    /// Add this line to the summary at `path`, dropping any earlier line for
    /// the same image (a `--force` rerun), so that the summary says what the
    /// folder holds. Under an exclusive advisory lock, in one write, so that
    /// concurrent classviz processes (shards) never interleave or tear lines.
    pub fn append_to(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string(self)?;
        text.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock().with_context(|| format!("locking {}", path.display()))?;
        let written = self.write_locked(&mut file, &text);
        let _ = file.unlock();
        written.with_context(|| format!("writing {}", path.display()))
    }

    fn write_locked(&self, file: &mut std::fs::File, text: &str) -> std::io::Result<()> {
        let mut old = String::new();
        file.read_to_string(&mut old)?;
        let same_image = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|value| value["path"].as_str() == Some(self.result.path.as_str()))
        };
        if !old.lines().any(same_image) {
            file.seek(SeekFrom::End(0))?;
            return file.write_all(text.as_bytes()).and_then(|()| file.flush());
        }
        let mut kept: String =
            old.lines().filter(|line| !same_image(line)).map(|line| format!("{line}\n")).collect();
        kept.push_str(text);
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(kept.as_bytes()).and_then(|()| file.flush())
    }
}

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

/// What made an image: the model, its input, the objective and every
/// setting of the ascent and the display, resolved. Stored as JSON in each
/// image's `provenance` text chunk; a rerun into the same folder reuses an
/// image only when its provenance is the one the run would write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The model file's SHA-256.
    pub model: String,
    /// `[C, H, W]` and the normalisation the image was made for.
    pub input: ProvenanceInput,
    /// `logit`, `log-prob`, `prob`, `channel:TAP`, `neuron:TAP` or `layer:TAP`.
    pub objective: String,
    pub iters: u32,
    pub lr: f64,
    pub l2: f64,
    pub seed: u64,
    /// `--init` as resolved (`zero`, `noise:σ`, `image:PATH`), if not the parameterisation's own.
    pub init: Option<String>,
    /// The resolved style: parameterisation, optimiser, views, priors.
    pub style: serde_json::Value,
    /// With `--facets`: how many, the diversity weight and its tap.
    pub facets: Option<serde_json::Value>,
    /// With `--accentuate`: the weight and the tap.
    pub accentuate: Option<serde_json::Value>,
    /// `--stretch`: the contrast stretched for display.
    pub stretch: bool,
}

/// The input part of a [`Provenance`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceInput {
    pub shape: Vec<i64>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// The PNG text chunk that holds an image's [`Provenance`].
pub const PROVENANCE_KEY: &str = "provenance";

impl Provenance {
    /// The provenance recorded in a PNG's text chunks, if any.
    pub fn of_text(text: &[(String, String)]) -> Option<Provenance> {
        let (_, json) = text.iter().find(|(key, _)| key == PROVENANCE_KEY)?;
        serde_json::from_str(json).ok()
    }

    /// The settings in which `self` (an image's) differs from `now` (this
    /// run's), each as `setting then (now now)`, by their JSON keys.
    pub fn differences(&self, now: &Provenance) -> Vec<String> {
        let (then, now) = (serde_json::json!(self), serde_json::json!(now));
        let mut found = Vec::new();
        differences_in("", &then, &now, &mut found);
        found
    }
}

/// Walk two JSON values side by side; where they differ, say so by path.
fn differences_in(
    path: &str,
    then: &serde_json::Value,
    now: &serde_json::Value,
    found: &mut Vec<String>,
) {
    use serde_json::Value;
    match (then, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let inner = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let missing = Value::Null;
                differences_in(
                    &inner,
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                    found,
                );
            }
        }
        (a, b) if a != b => found.push(format!("{path} {} (now {})", shown(a), shown(b))),
        _ => {}
    }
}

fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".to_string(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The text chunks of a visualisation's PNG: what it shows, in words, and its
/// [`Provenance`], enough to reproduce the run and to compare on resume.
/// Written by the visualise command and read back for skipped images.
#[derive(Debug, Clone, PartialEq)]
pub struct PngRecord {
    /// The model file, as given.
    pub model: String,
    /// `Some((class, name))` for a class image.
    pub class: Option<(i64, String)>,
    /// `Some((objective, unit))` for a unit image.
    pub unit: Option<(String, i64)>,
    /// "j of N, diversity W at TAP".
    pub facet: Option<String>,
    pub provenance: Provenance,
}

impl PngRecord {
    /// The text chunks, in order.
    pub fn to_text(&self) -> Vec<(String, String)> {
        let version = env!("CARGO_PKG_VERSION").to_string();
        let p = &self.provenance;
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
            ("iters", p.iters.to_string()),
            ("lr", p.lr.to_string()),
            ("l2", p.l2.to_string()),
            ("seed", p.seed.to_string()),
            ("version", version),
            ("style", p.style.to_string()),
        ]);
        text.extend(p.init.iter().map(|init| ("init", init.clone())));
        text.extend(self.facet.iter().map(|facet| ("facet", facet.clone())));
        text.push((PROVENANCE_KEY, serde_json::to_string(p).unwrap_or_default()));
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
    fn a_summary_keeps_one_line_per_image() {
        let path =
            std::env::temp_dir().join(format!("classviz-summary-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let params = RunParams {
            model: "m.pt".into(),
            lr: 1.0,
            l2: 1e-4,
            seed: 0,
            device: "cpu".into(),
            batch: 4,
        };
        let line = |path: &str, logit: f64| {
            let mut result = class_result();
            result.path = path.into();
            if let Subject::Class { logit: l, .. } = &mut result.subject {
                *l = logit;
            }
            SummaryLine { result, params: params.clone() }
        };
        for (image, logit) in [("a.png", 1.0), ("b.png", 2.0), ("a.png", 3.0)] {
            line(image, logit).append_to(&path).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<SummaryLine> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            lines,
            vec![line("b.png", 2.0), line("a.png", 3.0)],
            "the rerun replaces its line"
        );
        std::fs::remove_file(path).unwrap();
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

    fn provenance() -> Provenance {
        Provenance {
            model: "ab".repeat(32),
            input: ProvenanceInput {
                shape: vec![3, 224, 224],
                mean: vec![0.5; 3],
                std: vec![0.5; 3],
            },
            objective: "logit".into(),
            iters: 150,
            lr: 1.0,
            l2: 1e-4,
            seed: 0,
            init: None,
            style: serde_json::json!({"param": {"param": "pixel", "decay": 1.0}, "views": 1}),
            facets: None,
            accentuate: None,
            stretch: false,
        }
    }

    #[test]
    fn png_records_write_their_keys_in_order_and_their_provenance_reads_back() {
        let record = PngRecord {
            model: "m.pt".into(),
            class: Some((1, "one".into())),
            unit: None,
            facet: None,
            provenance: Provenance { iters: 7, lr: 0.25, ..provenance() },
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
                "style",
                "provenance"
            ]
        );
        assert_eq!(PngRecord::iters_of(&text), Some(7));
        assert_eq!(Provenance::of_text(&text), Some(record.provenance.clone()));
        let style: serde_json::Value = serde_json::from_str(&text[9].1).unwrap();
        assert_eq!(style["param"]["param"], "pixel", "the style chunk is JSON");
    }

    #[test]
    fn provenance_names_each_setting_that_differs() {
        let then = provenance();
        assert!(then.differences(&then).is_empty());
        let mut now = Provenance { iters: 50, init: Some("noise:0.01".into()), ..provenance() };
        now.style["param"]["param"] = "fourier".into();
        assert_eq!(
            then.differences(&now),
            [
                "init none (now noise:0.01)",
                "iters 150 (now 50)",
                "style.param.param pixel (now fourier)"
            ]
        );
    }
}
