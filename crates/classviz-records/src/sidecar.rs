//! The model's sidecar: `<model>.json` beside the TorchScript file.
//!
//! It says what the network expects (input shape, per-channel mean and std in
//! [0,1] units) and where the class names are, so that classviz can build the
//! zero-centred input space the paper optimises in.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::files;
use crate::input::check_channel_values;

pub use crate::tap::{token_grid_side, Readout, Tap, TapLayout};

/// The exporter's command, as messages name it: it writes models, their
/// sidecars, taps, compiled packages and randomised variants.
pub const EXPORTER: &str = "weights/export.py";

/// Where the class scores are in the model's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSelector {
    /// Element K of a tuple or list (`--output-index K`).
    Index(usize),
    /// Entry of a dict (`--output-key NAME`).
    Key(String),
}

impl fmt::Display for OutputSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSelector::Index(index) => write!(f, "element {index}"),
            OutputSelector::Key(key) => write!(f, "key '{key}'"),
        }
    }
}

/// Parsed `<model>.json`. Unknown keys are rejected so that typos surface.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Free-form model name, for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Free-form provenance, for reports.
    #[serde(default)]
    pub source: Option<String>,
    /// `[C, H, W]`.
    pub input_shape: Vec<i64>,
    /// Per-channel mean in [0,1] units: `x_model = (x01 − mean) / std`.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation in [0,1] units.
    pub std: Vec<f64>,
    /// Class names: a file (one per line, relative to the sidecar) or an inline list.
    #[serde(default)]
    pub labels: Option<LabelSource>,
    /// Where the class scores are in a tuple/list (index) or dict (key) output.
    #[serde(default)]
    pub output: Option<OutputSpec>,
    /// Intermediate activations the model returns beside its scores (dict
    /// entries named like its modules), with their `[C, H, W]` shapes.
    #[serde(default)]
    pub taps: Option<Vec<Tap>>,
    /// SHA-256 of the model file (64 hex digits), written by `weights/export.py`
    /// and checked at load: PyTorch's reader does not notice damaged weights.
    #[serde(default)]
    pub sha256: Option<String>,
    /// AOTInductor packages of the model's ascent step (`export.py --compile`).
    #[serde(default)]
    pub compiled: Option<Vec<CompiledPackage>>,
    /// The model with its top blocks re-initialised, cascading deeper
    /// (`export.py --randomise`), for `saliency --sanity`.
    #[serde(default)]
    pub randomised: Option<Vec<Randomised>>,
    /// `false` when the input's gradient is not finite at the zero image (a
    /// norm of the input, or a square root, at zero: MaxViT), though it is
    /// elsewhere: the paper's zero start cannot be taken there.
    #[serde(default)]
    pub finite_gradient_at_zero: Option<bool>,
}

/// One variant of the model with its top `blocks` re-initialised.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Randomised {
    /// How many blocks from the top are re-initialised.
    pub depth: u32,
    /// Their names, top first.
    pub blocks: Vec<String>,
    /// The variant's TorchScript file (with its own sidecar), relative to this sidecar.
    pub file: PathBuf,
}

/// An AOTInductor package of one step of the model (its scores and taps, and
/// the input's gradient of weighted outputs), compiled for one device.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CompiledPackage {
    /// The `.pt2` file, relative to the sidecar.
    pub file: PathBuf,
    /// "cpu" or "cuda".
    pub device: String,
    /// The batch it was compiled for; `None`: any batch (a dynamic dimension).
    #[serde(default)]
    pub batch: Option<i64>,
    /// `[C, H, W]`.
    pub input_shape: Vec<i64>,
    /// The taps it returns after the scores, in this order.
    #[serde(default)]
    pub taps: Vec<String>,
    /// The package file's SHA-256.
    pub sha256: String,
    /// The SHA-256 of the model file it was compiled from.
    pub model_sha256: String,
    /// The PyTorch version that compiled it (a package runs only on that version).
    pub torch: String,
    /// How its CPU kernels choose their thread count: `dynamic` reads it at run
    /// time (so `--threads` reaches them); absent, they run the compiling
    /// machine's count, whatever `--threads` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<PackageThreads>,
    /// Inductor settings other than its defaults that the package was built
    /// with (where the defaults failed on this model), as the compiler names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inductor: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// How a package's CPU kernels choose their thread count.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PackageThreads {
    /// The count set at run time (Inductor's `cpp.dynamic_threads`).
    Dynamic,
}

/// What the sidecar's hash says of the model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The file's SHA-256 is the one recorded.
    Verified,
    /// The sidecar records none (hand-written, or from an older export).
    Unrecorded,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OutputSpec {
    Index(usize),
    Key(String),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LabelSource {
    File(PathBuf),
    Inline(Vec<String>),
}

/// The sidecar path for a model: same stem, `.json`.
pub fn sidecar_path(model_path: &Path) -> PathBuf {
    model_path.with_extension("json")
}

impl Sidecar {
    /// Read and validate the sidecar; `Ok(None)` when there is none.
    pub fn read_beside(model_path: &Path) -> Result<Option<Sidecar>> {
        let path = sidecar_path(model_path);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let text = files::read_text(&path, "model metadata")?;
        let sidecar =
            Sidecar::parse(&text).with_context(|| format!("model metadata {}", path.display()))?;
        Ok(Some(sidecar))
    }

    pub fn parse(text: &str) -> Result<Sidecar> {
        let sidecar: Sidecar = serde_json::from_str(text)?;
        sidecar.validate()?;
        Ok(sidecar)
    }

    fn validate(&self) -> Result<()> {
        let [channels, height, width] = self.input_shape[..] else {
            bail!("input_shape must be [C, H, W], got {:?}", self.input_shape);
        };
        if channels < 1 || height < 1 || width < 1 {
            bail!("input_shape must be positive, got {:?}", self.input_shape);
        }
        check_channel_values("mean", &self.mean, channels)?;
        check_channel_values("std", &self.std, channels)?;
        for tap in self.taps.iter().flatten() {
            if tap.shape.iter().any(|&d| d < 1) {
                bail!("tap {} must have a positive [C, H, W] shape, got {:?}", tap.name, tap.shape);
            }
            tap.output_shape()?;
        }
        for package in self.compiled.iter().flatten() {
            for hash in [&package.sha256, &package.model_sha256] {
                check_sha256(hash)?;
            }
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            bail!("std must be positive, got {:?}", self.std);
        }
        if let Some(hash) = &self.sha256 {
            check_sha256(hash)?;
        }
        Ok(())
    }

    /// Check `model_path`'s bytes against the recorded SHA-256; a mismatch is
    /// an error that names both hashes.
    pub fn verify(&self, model_path: &Path) -> Result<Integrity> {
        let Some(expected) = &self.sha256 else { return Ok(Integrity::Unrecorded) };
        let actual = files::sha256_hex(model_path, "model")?;
        if !actual.eq_ignore_ascii_case(expected) {
            bail!(
                "model {} does not match its sidecar: the file's SHA-256 is {actual}, {} records {expected}; the file is damaged or was replaced: export it again (`make weights` or {EXPORTER})",
                model_path.display(),
                sidecar_path(model_path).display()
            );
        }
        Ok(Integrity::Verified)
    }

    /// The output selector the sidecar asks for, if any.
    pub fn output_selector(&self) -> Option<OutputSelector> {
        self.output.as_ref().map(|spec| match spec {
            OutputSpec::Index(index) => OutputSelector::Index(*index),
            OutputSpec::Key(key) => OutputSelector::Key(key.clone()),
        })
    }

    /// Where the labels come from, for reports.
    pub fn labels_description(&self, model_path: &Path) -> Option<String> {
        match &self.labels {
            None => None,
            Some(LabelSource::Inline(_)) => {
                Some(format!("inline in {}", sidecar_path(model_path).display()))
            }
            Some(LabelSource::File(file)) => {
                Some(labels_path(model_path, file).display().to_string())
            }
        }
    }

    /// Load the class names the sidecar points at, if any.
    pub fn load_labels(&self, model_path: &Path) -> Result<Option<Vec<String>>> {
        match &self.labels {
            None => Ok(None),
            Some(LabelSource::Inline(names)) => Ok(Some(names.clone())),
            Some(LabelSource::File(file)) => {
                let path = labels_path(model_path, file);
                let text = files::read_text(&path, "labels file").with_context(|| {
                    format!("model metadata {}", sidecar_path(model_path).display())
                })?;
                Ok(Some(
                    text.lines()
                        .map(|line| line.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .collect(),
                ))
            }
        }
    }
}

fn check_sha256(hash: &str) -> Result<()> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("sha256 must be 64 hex digits, got '{hash}'");
    }
    Ok(())
}

/// A file named in the sidecar, relative to the sidecar's folder.
pub fn beside_sidecar(model_path: &Path, file: &Path) -> PathBuf {
    labels_path(model_path, file)
}

/// A labels file named in the sidecar, relative to the sidecar's folder.
fn labels_path(model_path: &Path, file: &Path) -> PathBuf {
    sidecar_path(model_path).parent().unwrap_or(Path::new(".")).join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LITE0: &str = r#"{"name": "m", "input_shape": [3, 224, 224],
        "mean": [0.498, 0.498, 0.498], "std": [0.502, 0.502, 0.502], "labels": "classes.txt"}"#;

    #[test]
    fn parses_a_valid_sidecar() {
        let sidecar = Sidecar::parse(LITE0).unwrap();
        assert_eq!(sidecar.input_shape, vec![3, 224, 224]);
        assert_eq!(sidecar.labels, Some(LabelSource::File("classes.txt".into())));
    }

    #[test]
    fn taps_of_every_layout_are_grids_with_their_source_described() {
        let text = r#"{"input_shape": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [1, 1, 1],
            "taps": [{"name": "blocks.1", "shape": [8, 4, 5], "layout": "tokens",
                      "source_shape": [22, 8], "prefix_tokens": 2},
                     {"name": "stages.0", "shape": [16, 8, 8], "layout": "nhwc", "source_shape": [8, 8, 16]},
                     {"name": "conv", "shape": [4, 16, 16], "layout": "nchw", "source_shape": [4, 16, 16]}]}"#;
        let sidecar = Sidecar::parse(text).unwrap();
        let taps = sidecar.taps.unwrap();
        assert_eq!(taps[0].grid_shape().unwrap(), [8, 4, 5]);
        assert_eq!(taps[0].layout, Some(TapLayout::Tokens));
        assert!(!taps[0].is_tokens(), "the export returns the grid");
        assert_eq!(taps[0].describe(), "blocks.1 8x4x5 (tokens 22x8, 2 prefix)");
        assert_eq!(taps[1].describe(), "stages.0 16x8x8 (channels last 8x8x16)");
        assert_eq!(taps[2].describe(), "conv 4x16x16");
        let bad = text.replace(r#""shape": [8, 4, 5]"#, r#""shape": [22, 8]"#);
        let message = format!("{:#}", Sidecar::parse(&bad).unwrap_err());
        assert!(message.contains("must have a [C, H, W] shape"), "{message}");
    }

    #[test]
    fn inline_labels_parse() {
        let text =
            r#"{"input_shape": [1, 8, 8], "mean": [0.5], "std": [0.25], "labels": ["a", "b"]}"#;
        let sidecar = Sidecar::parse(text).unwrap();
        assert_eq!(sidecar.labels, Some(LabelSource::Inline(vec!["a".into(), "b".into()])));
    }

    #[test]
    fn rejects_bad_sidecars_with_a_reason() {
        for (text, expected) in [
            (
                r#"{"input_shape": [3, 8, 8], "mean": [0.5, 0.5, 0.5], "std": [1, 1, 1], "colour": 1}"#,
                "unknown field",
            ),
            (
                r#"{"input_shape": [3, 8, 8], "mean": [0.5, 0.5], "std": [1, 1, 1]}"#,
                "mean has 2 values",
            ),
            (
                r#"{"input_shape": [3, 8, 8], "mean": [0.5, 0.5, 0.5], "std": [1, 0, 1]}"#,
                "std must be positive",
            ),
            (r#"{"input_shape": [8, 8], "mean": [0.5], "std": [1]}"#, "[C, H, W]"),
            (r#"{"mean": [0.5], "std": [1]}"#, "missing field"),
            (
                r#"{"input_shape": [3, 8, 8], "mean": [0.5, 0.5, 0.5], "std": [1, 1, 1], "taps": [{"name": "t", "shape": [11, 4]}]}"#,
                "square number of patches",
            ),
        ] {
            let message = format!("{:#}", Sidecar::parse(text).unwrap_err());
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
