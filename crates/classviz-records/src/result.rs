//! The record of one image: what it shows (a class with its scores, or a
//! unit), where it was written and how long it took; printed as a `--json`
//! line and, with the run's parameters, kept in `summary.jsonl`
//! ([`crate::summary`]).

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn class_result() -> ImageResult {
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
}
