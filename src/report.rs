//! What the user sees: the progress bar on stderr, and per-class results on
//! stdout as JSON lines or a one-line human summary.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::ascent::Step;
use crate::classes::Labels;
use crate::model::Classifier;

/// A freshly loaded model, after printing its warnings once on stderr.
pub fn with_warnings(model: Classifier) -> Classifier {
    for warning in &model.warnings {
        eprintln!("classviz: warning: {warning}");
    }
    model
}

/// Progress of a run: classes done of total with an ETA, and the current
/// batch's step with its mean class score. Hidden under `--quiet` or when
/// stderr is not a terminal.
pub struct Progress {
    classes: ProgressBar,
    steps: ProgressBar,
}

impl Progress {
    pub fn new(total_classes: usize, iters: u32, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress { classes: ProgressBar::hidden(), steps: ProgressBar::hidden() };
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let classes = bars.add(ProgressBar::new(total_classes as u64));
        classes.set_style(style("classes [{bar:30}] {pos}/{len} {msg} ({elapsed}, ETA {eta})"));
        let steps = bars.add(ProgressBar::new(u64::from(iters)));
        steps.set_style(style("{prefix} [{bar:30}] step {pos}/{len}, mean S_c {msg}"));
        Progress { classes, steps }
    }

    /// A new batch starts; `label` names its classes.
    pub fn start_batch(&self, label: &str) {
        self.steps.reset();
        self.steps.set_prefix(label.to_string());
    }

    pub fn step(&self, step: &Step) {
        self.steps.set_position(u64::from(step.step));
        if let Some(scores) = &step.class_scores {
            let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
            self.steps.set_message(format!("{mean:.2}"));
        }
    }

    pub fn classes_done(&self, count: usize) {
        self.classes.inc(count as u64);
    }

    /// Print a line above the bars (or plainly on stderr when hidden).
    pub fn note(&self, message: &str) {
        if self.classes.is_hidden() {
            eprintln!("classviz: {message}");
        } else {
            self.classes.println(format!("classviz: {message}"));
        }
    }

    pub fn finish(&self) {
        self.steps.finish_and_clear();
        self.classes.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// One class in the final image's top-k.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ranked {
    pub class: i64,
    pub name: String,
    pub prob: f64,
}

/// The result of one class, as printed with `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassResult {
    pub class: i64,
    pub name: String,
    pub path: String,
    /// S_c of the saved image.
    pub logit: f64,
    /// softmax probability of class c for the saved image.
    pub prob: f64,
    pub top5: Vec<Ranked>,
    pub iters: u32,
    pub seconds: f64,
    /// The image was already in `--out`; these scores are of the saved file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// The ascent stalled: the gradient was exactly zero on its last steps, or
    /// the image never moved from its start (e.g. a grey image from the zero start).
    pub stalled: bool,
    /// With `--facets`: which of the class's images this is (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facet: Option<u32>,
}

/// The result of one image of a unit inside the network (a channel, a neuron,
/// a layer), as printed with `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UnitResult {
    /// `channel:TAP:K`, `neuron:TAP:K` or `layer:TAP`, as `--objective` takes it.
    pub unit: String,
    pub tap: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<i64>,
    pub path: String,
    /// The objective (mean activation, …) of the saved image.
    pub score: f64,
    pub iters: u32,
    pub seconds: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub stalled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facet: Option<u32>,
}

/// One image's result: of a class, or of a unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Outcome {
    Class(ClassResult),
    Unit(UnitResult),
}

impl Outcome {
    pub fn stalled(&self) -> bool {
        match self {
            Outcome::Class(result) => result.stalled,
            Outcome::Unit(result) => result.stalled,
        }
    }

    /// What the image shows, for messages: "100 (black swan)", "channel:_blocks.3:5".
    pub fn subject(&self) -> String {
        match self {
            Outcome::Class(result) => format!("class {} ({})", result.class, result.name),
            Outcome::Unit(result) => result.unit.clone(),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Outcome::Class(result) => &result.path,
            Outcome::Unit(result) => &result.path,
        }
    }
}

/// A target's facets: each one's score and how alike they are.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FacetSummary {
    /// The class index, or the unit (`channel:TAP:K`).
    pub target: String,
    pub facets: u32,
    /// Each facet's objective (S_c for a class), as saved.
    pub scores: Vec<f64>,
    /// Mean pairwise cosine similarity of the facets' Gram matrices at `tap`.
    pub similarity: f64,
    pub tap: String,
    pub diversity: f64,
}

pub fn print_facets(summary: &FacetSummary, json: bool) -> Result<()> {
    let line = if json {
        serde_json::to_string(summary)?
    } else {
        let scores =
            summary.scores.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ");
        format!(
            "{}: {} facets, scores {scores}; mean pairwise similarity {:.3} at {} (diversity {})",
            summary.target, summary.facets, summary.similarity, summary.tap, summary.diversity
        )
    };
    print_line(&line)
}

impl ClassResult {
    /// The result for `class`, from the scores of its saved image at `path`;
    /// `iters`, `seconds`, `skipped` and `stalled` are left for the caller to set.
    pub fn from_scores(
        class: i64,
        labels: &Labels,
        path: &Path,
        scores: &crate::model::Scores,
    ) -> ClassResult {
        ClassResult {
            class,
            name: labels.name(class).to_string(),
            path: path.display().to_string(),
            logit: scores.logit,
            prob: scores.prob,
            top5: scores.top5(labels),
            iters: 0,
            seconds: 0.0,
            skipped: false,
            stalled: false,
            facet: None,
        }
    }
}

impl crate::model::Scores {
    pub fn top5(&self, labels: &Labels) -> Vec<Ranked> {
        self.top
            .iter()
            .map(|&(class, prob)| Ranked { class, name: labels.name(class).to_string(), prob })
            .collect()
    }
}

/// The run's parameters, recorded with every summary line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunParams {
    pub model: String,
    pub lr: f64,
    pub l2: f64,
    pub seed: u64,
    pub device: String,
    pub batch: usize,
}

/// One line of `<out>/summary.jsonl`: the `--json` keys plus the run's parameters.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryLine<'a> {
    #[serde(flatten)]
    pub result: &'a Outcome,
    #[serde(flatten)]
    pub params: &'a RunParams,
}

/// The summary file inside `--out`.
pub const SUMMARY_FILE: &str = "summary.jsonl";

/// Append one JSON line to `path` under an exclusive advisory lock, in one
/// write, so that concurrent classviz processes never interleave or tear lines.
pub fn append_summary(path: &Path, line: &SummaryLine<'_>) -> Result<()> {
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock().with_context(|| format!("locking {}", path.display()))?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.flush());
    let _ = file.unlock();
    written.with_context(|| format!("appending to {}", path.display()))
}

/// Print a result on stdout: one JSON line, or one human line.
pub fn print_result(result: &Outcome, json: bool) -> Result<()> {
    let line = if json {
        serde_json::to_string(result)?
    } else {
        match result {
            Outcome::Class(result) => human_line(result),
            Outcome::Unit(result) => unit_line(result),
        }
    };
    print_line(&line)
}

fn unit_line(result: &UnitResult) -> String {
    let facet = result.facet.map_or(String::new(), |f| format!(" facet {f}"));
    let stalled = if result.stalled { ", stalled" } else { "" };
    let timing = if result.skipped {
        format!("{} iters, already done", result.iters)
    } else {
        format!("{} iters in {:.1} s", result.iters, result.seconds)
    };
    format!(
        "{}{facet}: score {:.3}{stalled}; {timing} -> {}",
        result.unit, result.score, result.path
    )
}

/// What `classviz status` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    pub out: String,
    pub total: usize,
    pub done: usize,
    pub missing: Vec<i64>,
}

pub fn print_status(report: &StatusReport, json: bool) -> Result<()> {
    let line = if json {
        serde_json::to_string(report)?
    } else if report.missing.is_empty() {
        format!("{}: all {} classes done", report.out, report.total)
    } else {
        let missing = report.missing.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        format!(
            "{}: {} of {} classes done; missing: {missing}",
            report.out, report.done, report.total
        )
    };
    print_line(&line)
}

/// A box in original-image pixels: `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct BoxCoordinates {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// One photo's saliency result, as printed with `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SaliencyResult {
    pub image: String,
    pub class: i64,
    pub name: String,
    /// The model's probability of `class` for the photo.
    pub prob: f64,
    pub method: String,
    /// σ in pixels of the Gaussian that pooled the map before ranking.
    pub smoothing: f64,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#box: Option<BoxCoordinates>,
}

pub fn print_saliency(result: &SaliencyResult, json: bool) -> Result<()> {
    let line = if json {
        serde_json::to_string(result)?
    } else {
        let bbox = result
            .r#box
            .map_or(String::new(), |b| format!(", box ({},{})-({},{})", b.x0, b.y0, b.x1, b.y1));
        let verdict = if result.beats_random { "beats random" } else { "does not beat random" };
        format!(
            "{}: {} ({}) p {:.3}; {} deletion AUC {:.3} (random {:.3} ± {:.3}), insertion AUC {:.3} (random {:.3} ± {:.3}), {verdict}{bbox} -> {}",
            result.image,
            result.class,
            result.name,
            result.prob,
            result.method,
            result.deletion_auc,
            result.random_auc,
            result.random_deletion_std,
            result.insertion_auc,
            result.random_insertion_auc,
            result.random_insertion_std,
            result.overlay
        )
    };
    print_line(&line)
}

/// One image scored by `classviz score`.
#[derive(Debug, Clone, Serialize, PartialEq)]
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

/// Totals of a `classviz score` run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreTotals<'a> {
    pub model: &'a str,
    pub images: &'a [ScoreRow],
    pub total: usize,
    pub top1: usize,
    pub top5: usize,
    pub mean_prob: f64,
}

pub fn print_scores(model: &str, rows: &[ScoreRow], json: bool) -> Result<()> {
    let totals = ScoreTotals {
        model,
        images: rows,
        total: rows.len(),
        top1: rows.iter().filter(|r| r.top1).count(),
        top5: rows.iter().filter(|r| r.top5).count(),
        mean_prob: rows.iter().map(|r| r.prob).sum::<f64>() / rows.len().max(1) as f64,
    };
    if json {
        return print_line(&serde_json::to_string(&totals)?);
    }
    for row in rows {
        let best =
            row.predicted.first().map_or(String::new(), |b| format!("{} ({})", b.class, b.name));
        let verdict = if row.top1 {
            "top-1"
        } else if row.top5 {
            "top-5"
        } else {
            "miss"
        };
        print_line(&format!(
            "{}: {} ({}) p {:.3} {verdict}; model says {best}",
            row.image, row.class, row.name, row.prob
        ))?;
    }
    print_line(&format!(
        "{model}: top-1 {}/{}, top-5 {}/{}, mean p {:.3}",
        totals.top1, totals.total, totals.top5, totals.total, totals.mean_prob
    ))
}

/// One line of results on stdout.
pub fn print_line(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")
}

/// What `classviz info` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelInfo {
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
    /// Intermediate activations the model returns, with their `[C, H, W]` shapes.
    pub taps: Vec<crate::metadata::Tap>,
}

pub fn print_info(info: &ModelInfo, json: bool) -> Result<()> {
    let text = if json {
        serde_json::to_string(info)?
    } else {
        let [channels, height, width] = info.input_shape[..] else {
            anyhow::bail!("input shape is not [C, H, W]")
        };
        let labels = info
            .labels
            .as_deref()
            .map_or("none: classes are named by index".to_string(), |l| l.to_string());
        let parameters = if info.parameters == 0 {
            "0 trainable (frozen export: weights are graph constants)".to_string()
        } else {
            format!("{} trainable", info.parameters)
        };
        let output = info.output.as_deref().unwrap_or("the tensor it returns");
        let probabilities = if info.outputs_probabilities {
            " (look like probabilities: softmax-ended)"
        } else {
            ""
        };
        [
            format!("model        {}", info.model),
            format!(
                "input        {channels}x{height}x{width} (C x H x W, from {})",
                info.input_source
            ),
            format!("classes      {}", info.classes),
            format!("labels       {labels}"),
            format!("mean / std   {:?} / {:?} ([0,1] units)", info.mean, info.std),
            format!("scores       {output}{probabilities}"),
            format!("parameters   {parameters}"),
            format!(
                "taps         {}",
                if info.taps.is_empty() {
                    "none (export with weights/export.py --taps to show channels)".to_string()
                } else {
                    info.taps
                        .iter()
                        .map(|t| {
                            format!(
                                "{} {}",
                                t.name,
                                t.shape.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            format!("device       {} ({})", info.device, info.dtype),
            format!(
                "fwd+bwd      {:.1} ms per image (median of {})",
                info.forward_backward_ms, info.timing_runs
            ),
        ]
        .join("\n")
    };
    print_line(&text)
}

fn human_line(result: &ClassResult) -> String {
    let facet = result.facet.map_or(String::new(), |f| format!(" facet {f}"));
    let verdict = match result.top5.first() {
        Some(best) if best.class == result.class => "top-1".to_string(),
        Some(best) => format!("top-1 is {} ({})", best.class, best.name),
        None => String::new(),
    };
    let verdict = if result.stalled { format!("{verdict}, stalled") } else { verdict };
    let timing = if result.skipped {
        format!("{} iters, already done", result.iters)
    } else {
        format!("{} iters in {:.1} s", result.iters, result.seconds)
    };
    format!(
        "{} ({}){facet}: S_c {:.2}, p {:.3}, {verdict}; {timing} -> {}",
        result.class, result.name, result.logit, result.prob, result.path
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(best: i64) -> ClassResult {
        ClassResult {
            class: 100,
            name: "black swan".into(),
            path: "results/100_black_swan.png".into(),
            logit: 42.5,
            prob: 0.99,
            top5: vec![Ranked { class: best, name: "x".into(), prob: 0.99 }],
            iters: 150,
            seconds: 3.25,
            skipped: false,
            stalled: false,
            facet: None,
        }
    }

    #[test]
    fn json_has_the_documented_keys() {
        let value: serde_json::Value = serde_json::to_value(result(100)).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        for key in ["class", "name", "path", "logit", "prob", "top5", "iters", "seconds"] {
            assert!(keys.contains(&key), "missing {key} in {keys:?}");
        }
        assert_eq!(value["top5"][0]["class"], 100);
    }

    #[test]
    fn summary_lines_append_whole() {
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
        for class in [100, 7] {
            let result = Outcome::Class(ClassResult { class, ..result(class) });
            append_summary(&path, &SummaryLine { result: &result, params: &params }).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0]["class"].as_i64(), lines[1]["class"].as_i64()), (Some(100), Some(7)));
        assert_eq!(lines[1]["model"], "m.pt");
        assert_eq!(lines[1]["batch"], 4);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn human_line_says_whether_the_class_won() {
        assert!(human_line(&result(100)).contains("top-1;"));
        assert!(human_line(&result(7)).contains("top-1 is 7 (x)"));
    }
}
