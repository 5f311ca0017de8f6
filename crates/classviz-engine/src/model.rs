//! A loaded model: the working network handle (behind the seam) and the
//! immutable facts about it (input, labels, taps, where they came from).
//! Loading checks the file against its sidecar, settles the input by probing,
//! and returns its warnings beside the model.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::knobs;
use crate::network::{self, EngineChoice, EngineContext, Network, Outputs, TapId, TorchScript};
use crate::precision::Precision;
use crate::probe::{self, InputOverrides, ShapeSource};
use classviz_records::classes::Labels;
use classviz_records::files;
use classviz_records::input::InputSpec;
use classviz_records::sidecar::{sidecar_path, Integrity, OutputSelector, Sidecar, Tap, EXPORTER};

/// How many of the best classes a score report lists.
pub const TOP_K: i64 = 5;
/// `--threads` above this is refused: libtorch would start that many threads.
pub const MAX_THREADS: usize = 256;

/// `--device`: where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees one, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// `cuda` (device 0) or `cuda:N`.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("'{text}' is not auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    /// The concrete device. An explicit CUDA request never falls back to the CPU.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => {
                Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu })
            }
            DeviceChoice::Cuda(index) => {
                if !tch::Cuda::is_available() {
                    bail!("--device {self}: no CUDA device is available to libtorch; use --device cpu or auto");
                }
                let count = tch::Cuda::device_count() as usize;
                if index >= count {
                    bail!(
                        "--device {self}: only {count} CUDA device(s) are visible (cuda:0–cuda:{})",
                        count - 1
                    );
                }
                Ok(Device::Cuda(index))
            }
        }
    }
}

/// Which model, how to feed it, where and how to run it: as the command line
/// gave it.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    /// `None`: the default model, which the caller finds (the binary looks
    /// in classviz's home) before loading.
    pub path: Option<PathBuf>,
    pub overrides: InputOverrides,
    /// Which part of a tuple/list/dict output holds the class scores.
    pub output: Option<OutputSelector>,
    pub device: DeviceChoice,
    pub threads: Option<usize>,
    pub engine: EngineChoice,
}

/// The immutable facts about a loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub input: InputSpec,
    pub shape_source: ShapeSource,
    pub labels: Labels,
    /// Where the labels came from: a file path, "inline", or `None`.
    pub labels_source: Option<String>,
    pub output: Option<OutputSelector>,
    /// The model's outputs look like probabilities (non-negative, summing to 1).
    pub outputs_probabilities: bool,
    /// Kind of the output scores (e.g. Float).
    pub score_kind: Kind,
    /// Trainable parameters (0 for a frozen export, whose weights are constants).
    pub parameter_count: i64,
    /// Intermediate activations the model also returns, from its sidecar.
    pub taps: Vec<Tap>,
    /// The sidecar, when there is one (it names compiled packages).
    pub sidecar: Option<Sidecar>,
    /// The model file's SHA-256: the one its sidecar records (checked at
    /// load), else the file's. Images record it as what made them.
    pub digest: String,
}

impl ModelInfo {
    /// Whether the input gradient is finite at the zero image: not where the
    /// export found a norm or a square root of the input there (MaxViT), so
    /// that a start from zero must move off it.
    pub fn gradient_finite_at_zero(&self) -> bool {
        self.sidecar.as_ref().and_then(|s| s.finite_gradient_at_zero) != Some(false)
    }
}

/// A loaded model: the network and what is known of it.
pub struct Model {
    pub network: Box<dyn Network>,
    pub info: ModelInfo,
}

/// A loaded model and what the user should know about it (printed once).
pub struct Loaded {
    pub model: Model,
    pub warnings: Vec<String>,
}

/// Scores of one image for one target class.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub logit: f64,
    pub prob: f64,
    /// The `TOP_K` best classes with their probabilities, best first.
    pub top: Vec<(i64, f64)>,
}

impl ModelRequest {
    /// The model file, which must have been given or found.
    pub fn model_path(&self) -> Result<PathBuf> {
        self.path.clone().context("no model file to load (--model)")
    }

    /// Apply the thread count (`--threads`, else the cores free now) and load
    /// the model on the chosen device.
    pub fn load(&self) -> Result<Loaded> {
        if let Some(threads) = self.threads {
            if threads == 0 || threads > MAX_THREADS {
                bail!("--threads {threads}: give 1 to {MAX_THREADS}");
            }
            tch::set_num_threads(threads as i32);
        } else if let Some(free) = crate::threads::default_threads() {
            tch::set_num_threads(free as i32);
            knobs::trace(|| format!("{free} threads: the cores free now"));
        }
        let device = self.device.resolve()?;
        knobs::trace(|| format!("libtorch ready, device {device:?}"));
        if device.is_cuda() {
            // Loading probes the model with one-off shapes: searching cuDNN's
            // algorithms for each would cost seconds. A run that repeats its
            // shapes turns the search on (`enable_cudnn_benchmark`).
            tch::Cuda::cudnn_set_benchmark(false);
        }
        let path = self.model_path()?;
        let loaded = load(&path, device, self)?;
        knobs::trace(|| format!("model {} loaded", path.display()));
        Ok(loaded)
    }
}

/// Load `path` (TorchScript) and its sidecar, find its input shape, check
/// that it maps `[N, C, H, W]` to `[N, classes]`, and open the engine.
fn load(path: &Path, device: Device, request: &ModelRequest) -> Result<Loaded> {
    let (sidecar, mut warnings) = read_checked(path)?;
    let output =
        request.output.clone().or_else(|| sidecar.as_ref().and_then(Sidecar::output_selector));
    let taps = sidecar.as_ref().and_then(|s| s.taps.clone()).unwrap_or_default();
    let tap_names = taps.iter().map(|t| t.name.clone()).collect();
    let torchscript = TorchScript::load(path, device, output.clone(), tap_names)?;
    let parameter_count = torchscript.parameter_count;
    knobs::trace(|| "TorchScript module on the device".to_string());
    let in_model = |err: anyhow::Error| err.context(format!("model {}", path.display()));
    let settled = probe::settle_input(&torchscript, sidecar.as_ref(), &request.overrides, path)
        .map_err(in_model)?;
    knobs::trace(|| "input shape settled (one probe pass)".to_string());
    warnings.extend(settled.warnings.iter().cloned());
    let labels = labels(path, sidecar.as_ref(), settled.classes)?;
    let outputs_probabilities =
        probe::outputs_look_like_probabilities(&torchscript, &settled.input)?;
    if outputs_probabilities {
        warnings.push(SOFTMAX_WARNING.to_string());
    }
    probe::check_taps(&torchscript, &settled.input, &taps).map_err(in_model)?;
    let input = &settled.input;
    let context = EngineContext {
        model_path: path,
        sidecar: sidecar.as_ref(),
        input_shape: [input.channels, input.height, input.width],
        classes: settled.classes,
        taps: &taps,
        threads: request.threads,
    };
    let (network, note) = network::open(request.engine, torchscript, &context)?;
    warnings.extend(note);
    knobs::trace(|| format!("engine: {}", network.engine()));
    let digest = match sidecar.as_ref().and_then(|s| s.sha256.clone()) {
        Some(recorded) => recorded.to_ascii_lowercase(),
        None => files::sha256_hex(path, "model")?,
    };
    let info = ModelInfo {
        digest,
        path: path.to_path_buf(),
        input: settled.input,
        shape_source: settled.source,
        labels_source: sidecar.as_ref().and_then(|s| s.labels_description(path)),
        labels,
        output,
        outputs_probabilities,
        score_kind: settled.score_kind,
        parameter_count,
        taps,
        sidecar,
    };
    Ok(Loaded { model: Model { network, info }, warnings })
}

/// What a softmax-ended model's user should know.
const SOFTMAX_WARNING: &str = "the model's outputs are non-negative and sum to 1: it seems to end in softmax, but the paper \
    maximises pre-softmax scores; export the model without its softmax, or use --objective log-prob";

/// The model file, checked, and its sidecar, whose hash it must match (a
/// sidecar without one gets a warning).
fn read_checked(path: &Path) -> Result<(Option<Sidecar>, Vec<String>)> {
    if std::fs::symlink_metadata(path).is_err() {
        bail!(
            "model {} not found: run `make weights` to export the default model, or pass --model",
            path.display()
        );
    }
    files::check_input_file(path, "model")?;
    let sidecar = Sidecar::read_beside(path)?;
    let integrity = sidecar.as_ref().map(|s| s.verify(path)).transpose()?;
    knobs::trace(|| format!("model file checked: {integrity:?}"));
    let mut warnings = Vec::new();
    if integrity == Some(Integrity::Unrecorded) {
        warnings.push(format!(
            "{} records no sha256 for {}, so a damaged model file would go unnoticed ({EXPORTER} records one)",
            sidecar_path(path).display(),
            path.display()
        ));
    }
    Ok((sidecar, warnings))
}

/// The class names from the sidecar, which must name every output; else indices.
fn labels(path: &Path, sidecar: Option<&Sidecar>, classes: i64) -> Result<Labels> {
    match sidecar.map(|s| s.load_labels(path)).transpose()?.flatten() {
        Some(names) if names.len() as i64 != classes => bail!(
            "model {} has {classes} outputs but its labels list {} names",
            path.display(),
            names.len()
        ),
        Some(names) => Ok(Labels::new(names)),
        None => Ok(Labels::indices(classes as usize)),
    }
}

impl Model {
    /// Load the model file `path` on `device` with its sidecar's settings,
    /// leaving the thread count alone (for tests, benchmarks and tools).
    pub fn open(path: &Path, device: Device) -> Result<Model> {
        let request = ModelRequest { path: Some(path.to_path_buf()), ..ModelRequest::default() };
        Ok(load(path, device, &request)?.model)
    }

    pub fn device(&self) -> Device {
        self.network.device()
    }

    pub fn input(&self) -> &InputSpec {
        &self.info.input
    }

    /// The outputs for a batch in the model's space, without gradients, in fp32.
    pub fn forward(&self, x: &Tensor, taps: &[TapId]) -> Result<Outputs> {
        self.network.forward(x, taps, Precision::Fp32)
    }

    /// Class probabilities `[N, classes]`: the softmax of the scores, or the
    /// outputs themselves for a softmax-ended model.
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        let outputs = self.forward(x, &[])?.scores.f_to_kind(Kind::Float)?;
        if self.info.outputs_probabilities {
            Ok(outputs)
        } else {
            Ok(outputs.f_softmax(-1, Kind::Float)?)
        }
    }

    /// p_c for `rows` images made `batch` at a time by `make(start, count)`,
    /// `[rows]`, without gradients: images that would not fit in memory at
    /// once (masked copies, deletion curves) are scored as they are made.
    pub fn class_probabilities(
        &self,
        rows: i64,
        batch: i64,
        class: i64,
        make: impl Fn(i64, i64) -> Result<Tensor>,
    ) -> Result<Tensor> {
        tch::no_grad(|| {
            let mut kept = Vec::new();
            for start in (0..rows).step_by(batch.max(1) as usize) {
                let count = batch.min(rows - start);
                kept.push(self.probabilities(&make(start, count)?)?.f_select(1, class)?);
            }
            Ok(Tensor::f_cat(&kept, 0)?)
        })
    }

    /// Score a normalised batch in fp32, one forward pass; `classes[i]` is
    /// image i's target: S_c, p_c and the top classes.
    pub fn classify(&self, x: &Tensor, classes: &[i64]) -> Result<Vec<Scores>> {
        let logits =
            self.forward(x, &[])?.scores.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
        let probs = if self.info.outputs_probabilities {
            logits.shallow_clone()
        } else {
            logits.f_softmax(-1, Kind::Double)?
        };
        let (values, indices) =
            probs.f_topk(TOP_K.min(self.info.labels.len() as i64), -1, true, true)?;
        let mut scores = Vec::with_capacity(classes.len());
        for (row, &class) in classes.iter().enumerate() {
            let row = row as i64;
            let top = Vec::<i64>::try_from(indices.f_get(row)?)?
                .into_iter()
                .zip(Vec::<f64>::try_from(values.f_get(row)?)?);
            scores.push(Scores {
                logit: logits.f_double_value(&[row, class])?,
                prob: probs.f_double_value(&[row, class])?,
                top: top.collect(),
            });
        }
        Ok(scores)
    }
}

/// Images per forward pass for attribution's samples (SmoothGrad's noisy
/// copies, integrated gradients' path, Score-CAM's masks, the metric curves):
/// `CLASSVIZ_SAMPLE_BATCH`, else the measured best for the device
/// (docs/benchmarks.md).
pub fn sample_batch(device: Device) -> i64 {
    knobs::sample_batch().unwrap_or(if device.is_cuda() {
        CUDA_SAMPLE_BATCH
    } else {
        CPU_SAMPLE_BATCH
    })
}

const CPU_SAMPLE_BATCH: i64 = 5;
const CUDA_SAMPLE_BATCH: i64 = 16;

/// Let cuDNN search for its fastest algorithms: worth it for runs that repeat
/// the same shapes many times (several batches), not for one short batch.
pub fn enable_cudnn_benchmark(device: Device, batches: usize) {
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(knobs::cudnn_benchmark(batches));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_parse() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("gpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn explicit_cuda_never_falls_back() {
        if tch::Cuda::is_available() {
            return;
        }
        let message = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
        assert!(message.contains("no CUDA device"), "{message}");
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cpu);
    }
}
