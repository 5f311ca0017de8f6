//! What the user sees: the progress bar on stderr, and results on stdout as
//! JSON (Lines) or one human line each.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use classviz_core::ascent::Step;
use classviz_engine::model::{Loaded, Model};
use classviz_records::formats::{
    FacetSummary, ImageResult, InfoReport, SaliencyResult, SanityResult, ScoreTotals, StatusReport,
    Subject, SummaryLine,
};
use classviz_records::metadata::Tap;

/// A freshly loaded model, after printing its warnings once on stderr.
pub fn with_warnings(loaded: Loaded) -> Model {
    for warning in &loaded.warnings {
        eprintln!("classviz: warning: {warning}");
    }
    loaded.model
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

/// Print one record on stdout as a JSON line.
pub fn print_json(record: &impl Serialize) -> Result<()> {
    print_line(&serde_json::to_string(record)?)
}

/// Print an image's result on stdout: one JSON line, or one human line.
pub fn print_result(result: &ImageResult, json: bool) -> Result<()> {
    if json {
        return print_json(result);
    }
    print_line(&human_line(result))
}

/// One result as a line for people.
fn human_line(result: &ImageResult) -> String {
    let facet = result.facet.map_or(String::new(), |f| format!(" facet {f}"));
    let timing = if result.skipped {
        format!("{} iters, already done", result.iters)
    } else {
        format!("{} iters in {:.1} s", result.iters, result.seconds)
    };
    let stalled = if result.stalled { ", stalled" } else { "" };
    let line = match &result.subject {
        Subject::Class { class, name, logit, prob, top5 } => {
            let verdict = match top5.first() {
                Some(best) if best.class == *class => "top-1".to_string(),
                Some(best) => format!("top-1 is {} ({})", best.class, best.name),
                None => String::new(),
            };
            format!("{class} ({name}){facet}: S_c {logit:.2}, p {prob:.3}, {verdict}{stalled}; {timing} -> {}", result.path)
        }
        Subject::Unit { unit, score, .. } => {
            format!("{unit}{facet}: score {score:.3}{stalled}; {timing} -> {}", result.path)
        }
    };
    line
}

pub fn print_facets(summary: &FacetSummary, json: bool) -> Result<()> {
    if json {
        return print_json(summary);
    }
    let scores = summary.scores.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ");
    print_line(&format!(
        "{}: {} facets, scores {scores}; mean pairwise similarity {:.3} at {} (diversity {})",
        summary.target, summary.facets, summary.similarity, summary.tap, summary.diversity
    ))
}

/// Append one JSON line to `path` under an exclusive advisory lock, in one
/// write, so that concurrent classviz processes never interleave or tear lines.
pub fn append_summary(path: &Path, line: &SummaryLine) -> Result<()> {
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

pub fn print_status(report: &StatusReport, json: bool) -> Result<()> {
    if json {
        return print_json(report);
    }
    if report.missing.is_empty() {
        return print_line(&format!("{}: all {} classes done", report.out, report.total));
    }
    let missing = report.missing.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    print_line(&format!(
        "{}: {} of {} classes done; missing: {missing}",
        report.out, report.done, report.total
    ))
}

pub fn print_saliency(result: &SaliencyResult, json: bool) -> Result<()> {
    if json {
        return print_json(result);
    }
    let bbox = result
        .r#box
        .map_or(String::new(), |b| format!(", box ({},{})-({},{})", b.x0, b.y0, b.x1, b.y1));
    let mask = result.mask.as_ref().map_or(String::new(), |m| format!(", mask {m}"));
    let tap = result.tap.as_ref().map_or(String::new(), |t| format!(" at {t}"));
    let verdict = if result.beats_random { "beats random" } else { "does not beat random" };
    print_line(&format!(
        "{}: {} ({}) p {:.3}; {}{tap} deletion AUC {:.3} (random {:.3} ± {:.3}), insertion AUC {:.3} (random {:.3} ± {:.3}), {verdict}{bbox}{mask} -> {}",
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
    ))
}

pub fn print_sanity(result: &SanityResult, json: bool) -> Result<()> {
    if json {
        return print_json(result);
    }
    let verdict = if result.unchanged { "UNCHANGED: fails the sanity check" } else { "changed" };
    print_line(&format!(
        "{}: {} ({}) {}: top {} block(s) randomised ({}): Spearman {:.3}, SSIM {:.3}, {verdict}",
        result.image,
        result.class,
        result.name,
        result.method,
        result.depth,
        result.blocks.join(", "),
        result.spearman,
        result.ssim
    ))
}

pub fn print_scores(totals: &ScoreTotals, json: bool) -> Result<()> {
    if json {
        return print_json(totals);
    }
    for row in &totals.images {
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
        "{}: top-1 {}/{}, top-5 {}/{}, mean p {:.3}",
        totals.model, totals.top1, totals.total, totals.top5, totals.total, totals.mean_prob
    ))
}

/// One line of results on stdout.
pub fn print_line(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")
}

pub fn print_info(info: &InfoReport, json: bool) -> Result<()> {
    if json {
        return print_json(info);
    }
    let [channels, height, width] = info.input_shape[..] else {
        anyhow::bail!("input shape is not [C, H, W]")
    };
    let labels = info
        .labels
        .as_deref()
        .map_or("none: classes are named by index".to_string(), str::to_string);
    let parameters = if info.parameters == 0 {
        "0 trainable (frozen export: weights are graph constants)".to_string()
    } else {
        format!("{} trainable", info.parameters)
    };
    let output = info.output.as_deref().unwrap_or("the tensor it returns");
    let probabilities =
        if info.outputs_probabilities { " (look like probabilities: softmax-ended)" } else { "" };
    let lines = [
        format!("model        {}", info.model),
        format!("input        {channels}x{height}x{width} (C x H x W, from {})", info.input_source),
        format!("classes      {}", info.classes),
        format!("labels       {labels}"),
        format!("mean / std   {:?} / {:?} ([0,1] units)", info.mean, info.std),
        format!("scores       {output}{probabilities}"),
        format!("parameters   {parameters}"),
        format!("taps         {}", tap_list(info)),
        format!("engine       {}", info.engine),
        format!("device       {} ({})", info.device, info.dtype),
        format!(
            "fwd+bwd      {:.1} ms per image (median of {})",
            info.forward_backward_ms, info.timing_runs
        ),
    ];
    print_line(&lines.join("\n"))
}

/// The taps of `info`: each grid, and the module's own layout where it differs.
fn tap_list(info: &InfoReport) -> String {
    if info.taps.is_empty() {
        return "none (export with weights/export.py --taps to show channels and class activation maps)".into();
    }
    info.taps.iter().map(Tap::describe).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use classviz_records::formats::{Ranked, RunParams};

    fn result(best: i64) -> ImageResult {
        ImageResult {
            subject: Subject::Class {
                class: 100,
                name: "black swan".into(),
                logit: 42.5,
                prob: 0.99,
                top5: vec![Ranked { class: best, name: "x".into(), prob: 0.99 }],
            },
            path: "results/100_black_swan.png".into(),
            iters: 150,
            seconds: 3.25,
            skipped: false,
            stalled: false,
            facet: None,
        }
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
            let mut result = result(class);
            if let Subject::Class { class: c, .. } = &mut result.subject {
                *c = class;
            }
            append_summary(&path, &SummaryLine { result, params: params.clone() }).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<SummaryLine> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].result.class(), lines[1].result.class()), (Some(100), Some(7)));
        assert_eq!(lines[1].params.model, "m.pt");
        assert_eq!(lines[1].params.batch, 4);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn human_line_says_whether_the_class_won() {
        assert!(human_line(&result(100)).contains("top-1;"));
        assert!(human_line(&result(7)).contains("top-1 is 7 (x)"));
    }
}
