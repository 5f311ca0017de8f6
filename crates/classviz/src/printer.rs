//! What the user sees: the progress bar on stderr, and results on stdout as
//! JSON (Lines) or human lines, through one printer over the records of
//! `classviz_records`.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use classviz_core::ascent::Step;
use classviz_records::gallery::GalleryReport;
use classviz_records::reports::{
    DryRunReport, ExemplarsResult, ExemplarsSummary, InfoReport, SaliencyPlanRow, SaliencyResult,
    SanityResult, ScoreTotals, StatusReport,
};
use classviz_records::result::{FacetSummary, ImageResult, Subject};
use classviz_records::sidecar::{Tap, EXPORTER};

use crate::flags::Printing;

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

    /// A bar over `total` items of one kind (`what`: "maps"), for
    /// subcommands without steps.
    pub fn items(total: usize, what: &str, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress { classes: ProgressBar::hidden(), steps: ProgressBar::hidden() };
        }
        let items = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        items.set_style(style(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} ({{elapsed}}, ETA {{eta}})"
        )));
        Progress { classes: items, steps: ProgressBar::hidden() }
    }

    /// `count` more items are done.
    pub fn items_done(&self, count: usize) {
        self.classes.inc(count as u64);
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

/// Results on stdout: each record as a JSON line (`--json`), or as a line
/// (or lines) for people. Notes go to stderr, and `--quiet` hides them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
}

/// A result record, printable for people too.
pub trait Record: Serialize {
    /// The record for people: one line, or a few for a table.
    fn human(&self) -> String;
}

impl Printer {
    pub fn of(printing: &Printing) -> Printer {
        Printer { json: printing.json, quiet: printing.quiet }
    }

    /// Print `record` on stdout.
    pub fn print(&self, record: &impl Record) -> Result<()> {
        if self.json {
            print_line(&serde_json::to_string(record)?)
        } else {
            print_line(&record.human())
        }
    }

    /// A note on stderr (not under `--quiet`).
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("classviz: {message}");
        }
    }
}

impl Record for ImageResult {
    fn human(&self) -> String {
        let facet = self.facet.map_or(String::new(), |f| format!(" facet {f}"));
        let timing = if self.skipped {
            format!("{} iters, already done", self.iters)
        } else {
            format!("{} iters in {:.1} s", self.iters, self.seconds)
        };
        let stalled = if self.stalled { ", stalled" } else { "" };
        match &self.subject {
            Subject::Class { class, name, logit, prob, top5 } => {
                let verdict = match top5.first() {
                    Some(best) if best.class == *class => "top-1".to_string(),
                    Some(best) => format!("top-1 is {} ({})", best.class, best.name),
                    None => String::new(),
                };
                format!("{class} ({name}){facet}: S_c {logit:.2}, p {prob:.3}, {verdict}{stalled}; {timing} -> {}", self.path)
            }
            Subject::Unit { unit, score, .. } => {
                format!("{unit}{facet}: score {score:.3}{stalled}; {timing} -> {}", self.path)
            }
        }
    }
}

impl Record for FacetSummary {
    fn human(&self) -> String {
        let scores = self.scores.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ");
        format!(
            "{}: {} facets, scores {scores}; mean pairwise similarity {:.3} at {} (diversity {})",
            self.target, self.facets, self.similarity, self.tap, self.diversity
        )
    }
}

impl Record for StatusReport {
    fn human(&self) -> String {
        let list =
            |targets: &[i64]| targets.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        if self.missing.is_empty() && self.stale.is_empty() {
            return format!("{}: all {} done", self.out, self.total);
        }
        let mut line = format!("{}: {} of {} done", self.out, self.done, self.total);
        if !self.missing.is_empty() {
            line.push_str(&format!("; missing: {}", list(&self.missing)));
        }
        if !self.stale.is_empty() {
            line.push_str(&format!("; made with other settings: {}", list(&self.stale)));
        }
        line
    }
}

impl Record for SaliencyResult {
    fn human(&self) -> String {
        let bbox = self
            .r#box
            .map_or(String::new(), |b| format!(", box ({},{})-({},{})", b.x0, b.y0, b.x1, b.y1));
        let mask = self.mask.as_ref().map_or(String::new(), |m| format!(", mask {m}"));
        let tap = self.tap.as_ref().map_or(String::new(), |t| format!(" at {t}"));
        let scores = self.faithfulness.as_ref().map_or(String::new(), |f| {
            let verdict = if f.beats_random { "beats random" } else { "does not beat random" };
            format!(
                "; deletion AUC {:.3} (random {:.3} ± {:.3}), insertion AUC {:.3} (random {:.3} ± {:.3}, {} orders), {verdict} ({:.1} s)",
                f.deletion_auc,
                f.random_auc,
                f.random_deletion_std,
                f.insertion_auc,
                f.random_insertion_auc,
                f.random_insertion_std,
                f.random_orders,
                f.faithfulness_seconds
            )
        });
        format!(
            "{}: {} ({}) p {:.3}; {}{tap} in {:.1} s{scores}{bbox}{mask} -> {}",
            self.image, self.class, self.name, self.prob, self.method, self.seconds, self.overlay
        )
    }
}

impl Record for ExemplarsResult {
    fn human(&self) -> String {
        let best: Vec<String> = self
            .top
            .iter()
            .take(3)
            .map(|e| {
                let name = std::path::Path::new(&e.image)
                    .file_name()
                    .map_or(e.image.clone(), |n| n.to_string_lossy().into_owned());
                format!("{name} ({:.2})", e.activation)
            })
            .collect();
        format!(
            "{}: {} of {} images, best {} -> {}",
            self.target,
            self.top.len(),
            self.images,
            best.join(", "),
            self.sheet
        )
    }
}

impl Record for ExemplarsSummary {
    fn human(&self) -> String {
        let skipped = if self.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", self.skipped.len())
        };
        format!(
            "{}: {} images read{skipped}, {} targets, {:.1} s ({:.1} images/s)",
            self.folder, self.images, self.targets, self.seconds, self.images_per_second
        )
    }
}

impl Record for SanityResult {
    fn human(&self) -> String {
        let verdict = if self.unchanged { "UNCHANGED: fails the sanity check" } else { "changed" };
        format!(
            "{}: {} ({}) {}: top {} block(s) randomised ({}): Spearman {:.3}, SSIM {:.3}, {verdict}",
            self.image,
            self.class,
            self.name,
            self.method,
            self.depth,
            self.blocks.join(", "),
            self.spearman,
            self.ssim
        )
    }
}

impl Record for ScoreTotals {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self
            .images
            .iter()
            .map(|row| {
                let best = row
                    .predicted
                    .first()
                    .map_or(String::new(), |b| format!("{} ({})", b.class, b.name));
                let verdict = match (row.top1, row.top5) {
                    (true, _) => "top-1",
                    (false, true) => "top-5",
                    (false, false) => "miss",
                };
                format!(
                    "{}: {} ({}) p {:.3} {verdict}; model says {best}",
                    row.image, row.class, row.name, row.prob
                )
            })
            .collect();
        lines.push(format!(
            "{}: top-1 {}/{}, top-5 {}/{}, mean p {:.3}",
            self.model, self.top1, self.total, self.top5, self.total, self.mean_prob
        ));
        lines.join("\n")
    }
}

impl Record for DryRunReport {
    fn human(&self) -> String {
        let settings = &self.settings;
        let mut lines = vec![
            format!("model        {} (sha256 {})", self.model, settings.model),
            format!("device       {}, engine {}, batch {}", self.device, self.engine, self.batch),
            format!(
                "preset       {}: {} steps, lr {}, l2 {}, seed {}",
                self.preset, settings.iters, settings.lr, settings.l2, settings.seed
            ),
            format!("objective    {}", settings.objective),
            format!(
                "init         {}",
                settings.init.as_deref().unwrap_or("the parameterisation's own")
            ),
            format!("style        {}", settings.style),
        ];
        for (what, value) in [("facets", &settings.facets), ("accentuate", &settings.accentuate)] {
            if let Some(value) = value {
                lines.push(format!("{what:12} {value}"));
            }
        }
        lines.push(format!("would write  {} image(s)", self.write.len()));
        lines.extend(self.write.iter().map(|path| format!("  {path}")));
        if !self.skip.is_empty() {
            lines.push(format!("would skip   {} image(s)", self.skip.len()));
            lines.extend(self.skip.iter().map(|s| format!("  {}: {}", s.path, s.why)));
        }
        lines.join("\n")
    }
}

impl Record for SaliencyPlanRow {
    fn human(&self) -> String {
        let mut lines = vec![format!(
            "{}: {} ({}); {}; would write {} file(s)",
            self.image,
            self.class,
            self.name,
            self.methods.join(", "),
            self.write.len()
        )];
        lines.extend(self.write.iter().map(|path| format!("  {path}")));
        lines.join("\n")
    }
}

impl Record for GalleryReport {
    fn human(&self) -> String {
        format!(
            "{}: {} rows, {} images from {} folder(s)",
            self.page, self.rows, self.images, self.folders
        )
    }
}

impl Record for InfoReport {
    fn human(&self) -> String {
        let [channels, height, width] = self.input_shape[..] else {
            return format!("model {}: input shape {:?}", self.model, self.input_shape);
        };
        let labels = self
            .labels
            .as_deref()
            .map_or("none: classes are named by index".to_string(), str::to_string);
        let parameters = if self.parameters == 0 {
            "0 trainable (frozen export: weights are graph constants)".to_string()
        } else {
            format!("{} trainable", self.parameters)
        };
        let output = self.output.as_deref().unwrap_or("the tensor it returns");
        let probabilities = if self.outputs_probabilities {
            " (look like probabilities: softmax-ended)"
        } else {
            ""
        };
        let taps = if self.taps.is_empty() {
            format!(
                "none (export with {EXPORTER} --taps to show channels and class activation maps)"
            )
        } else {
            self.taps.iter().map(Tap::describe).collect::<Vec<_>>().join(", ")
        };
        [
            format!("model        {}", self.model),
            format!(
                "input        {channels}x{height}x{width} (C x H x W, from {})",
                self.input_source
            ),
            format!("classes      {}", self.classes),
            format!("labels       {labels}"),
            format!("mean / std   {:?} / {:?} ([0,1] units)", self.mean, self.std),
            format!("scores       {output}{probabilities}"),
            format!("parameters   {parameters}"),
            format!("taps         {taps}"),
            format!("engine       {}", self.engine),
            format!("device       {} ({})", self.device, self.dtype),
            format!(
                "fwd+bwd      {:.1} ms per image (median of {})",
                self.forward_backward_ms, self.timing_runs
            ),
        ]
        .join("\n")
    }
}

/// One line of results on stdout.
pub fn print_line(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")
}
