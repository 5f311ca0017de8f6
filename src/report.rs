//! What the user sees: the progress bar on stderr, and per-class results on
//! stdout as JSON lines or a one-line human summary.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::ascent::Step;
use crate::classes::Labels;

/// Progress of one ascent, hidden under `--quiet` or when stderr is not a terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(iters: u32, quiet: bool, label: &str) -> Progress {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(u64::from(iters)), ProgressDrawTarget::stderr())
        };
        let style =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} S_c {msg} ({eta})")
                .map(|style| style.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    pub fn step(&self, step: Step) {
        self.bar.set_position(u64::from(step.step));
        self.bar.set_message(format!("{:.2}", step.class_score));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
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
}

impl crate::model::Scores {
    pub fn top5(&self, labels: &Labels) -> Vec<Ranked> {
        self.top
            .iter()
            .map(|&(class, prob)| Ranked { class, name: labels.name(class).to_string(), prob })
            .collect()
    }
}

/// Print a result on stdout: one JSON line, or one human line.
pub fn print_result(result: &ClassResult, json: bool) -> Result<()> {
    let line = if json { serde_json::to_string(result)? } else { human_line(result) };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")
}

fn human_line(result: &ClassResult) -> String {
    let verdict = match result.top5.first() {
        Some(best) if best.class == result.class => "top-1".to_string(),
        Some(best) => format!("top-1 is {} ({})", best.class, best.name),
        None => String::new(),
    };
    format!(
        "{} ({}): S_c {:.2}, p {:.3}, {verdict}; {} iters in {:.1} s -> {}",
        result.class,
        result.name,
        result.logit,
        result.prob,
        result.iters,
        result.seconds,
        result.path
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
    fn human_line_says_whether_the_class_won() {
        assert!(human_line(&result(100)).contains("top-1;"));
        assert!(human_line(&result(7)).contains("top-1 is 7 (x)"));
    }
}
