//! The provenance of an image: the model, its input, the objective and every
//! resolved setting of the ascent and the display. It is the one record of
//! what made an image, stored as JSON in the image's `provenance` text chunk
//! ([`crate::png_text`]); a rerun into the same folder reuses an image only
//! when its provenance is the one the run would write.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn provenance() -> Provenance {
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
