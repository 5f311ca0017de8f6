//! Loading a TorchScript classifier and its metadata, choosing the device,
//! and computing class scores (logits).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use tch::{CModule, Device, IValue, Kind, TchError, Tensor};

use crate::classes::Labels;
use crate::image_io::{self, Pixels};
use crate::metadata::{check_channel_values, sidecar_path, Sidecar};

/// How many of the best classes a score report lists.
pub const TOP_K: i64 = 5;

/// `--device`: where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees one, else the CPU.
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

/// A per-channel list of numbers from `--mean` / `--std`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelValues(pub Vec<f64>);

/// `--size`: the spatial input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSize {
    pub height: i64,
    pub width: i64,
}

/// Flags that override the sidecar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputOverrides {
    pub mean: Option<ChannelValues>,
    pub std: Option<ChannelValues>,
    pub size: Option<InputSize>,
    /// Which part of a tuple/list/dict output holds the class scores.
    pub output: Option<OutputSelector>,
}

/// Where the class scores are in the model's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSelector {
    /// Element K of a tuple or list (`--output K`).
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

/// Dict keys tried, in order, when no `--output-key` is given.
const DEFAULT_OUTPUT_KEYS: [&str; 2] = ["logits", "out"];

/// Input shapes tried, in order, for a model with no sidecar and no `--size`.
const PROBE_SHAPES: [[i64; 3]; 8] = [
    [3, 224, 224],
    [1, 28, 28],
    [3, 32, 32],
    [1, 32, 32],
    [3, 299, 299],
    [3, 256, 256],
    [3, 64, 64],
    [1, 64, 64],
];

/// What the network takes: `[C, H, W]` and the normalisation into its
/// zero-centred space, `x = (x01 − mean) / std`, with x01 in [0,1].
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub channels: i64,
    pub height: i64,
    pub width: i64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Where the input shape came from, for `classviz info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeSource {
    Sidecar,
    Flags,
    Probed,
}

impl fmt::Display for ShapeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShapeSource::Sidecar => "sidecar",
            ShapeSource::Flags => "flags",
            ShapeSource::Probed => "probing",
        })
    }
}

impl InputSpec {
    /// The input shape for a batch of `n`: `[n, C, H, W]`.
    pub fn batch_shape(&self, n: i64) -> [i64; 4] {
        [n, self.channels, self.height, self.width]
    }

    /// A batch of `n` zero images (the mean image), laid out channels-last:
    /// libtorch's CPU convolutions are markedly faster on NHWC than on NCHW.
    pub fn zeros(&self, n: i64, device: Device) -> Result<Tensor> {
        let nhwc =
            Tensor::f_zeros([n, self.height, self.width, self.channels], (Kind::Float, device))?;
        Ok(nhwc.f_permute([0, 3, 1, 2])?)
    }

    fn channel_tensor(&self, values: &[f64], device: Device) -> Tensor {
        Tensor::from_slice(values).to_kind(Kind::Float).to_device(device).view([
            1,
            self.channels,
            1,
            1,
        ])
    }

    /// `[0,1]` images → the model's zero-centred space.
    pub fn normalise(&self, x01: &Tensor) -> Tensor {
        let device = x01.device();
        (x01 - self.channel_tensor(&self.mean, device)) / self.channel_tensor(&self.std, device)
    }

    /// The model's space → `[0,1]` units (not clamped): the paper's "add the mean back".
    pub fn denormalise(&self, x: &Tensor) -> Tensor {
        let device = x.device();
        x * self.channel_tensor(&self.std, device) + self.channel_tensor(&self.mean, device)
    }
}

/// `--objective`: which function of the model's output the ascent maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Objective {
    /// The class score itself (pre-softmax), as in the paper.
    #[default]
    Logit,
    /// log p_c: log-softmax of the scores, or the log of a softmax-ended model's output.
    LogProb,
    /// p_c: softmax of the scores, or a softmax-ended model's output itself.
    Prob,
}

/// A loaded classifier: frozen TorchScript module, its input spec and labels.
pub struct Classifier {
    module: CModule,
    pub device: Device,
    pub input: InputSpec,
    pub shape_source: ShapeSource,
    pub labels: Labels,
    /// Where the labels came from: a file path, "inline", or `None`.
    pub labels_source: Option<String>,
    pub output: Option<OutputSelector>,
    /// The model's outputs look like probabilities (non-negative, summing to 1).
    pub outputs_probabilities: bool,
    /// Kind of the output scores (e.g. Float).
    pub output_kind: Kind,
    /// Trainable parameters (0 for a frozen export, whose weights are constants).
    pub parameter_count: i64,
    /// Things the user should know (printed once on stderr).
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

impl Classifier {
    /// Load `path` (TorchScript) and its sidecar, stop its parameters from
    /// requiring grad, find its input shape, and check that it maps
    /// `[N, C, H, W]` to `[N, classes]`.
    pub fn load(path: &Path, device: Device, overrides: &InputOverrides) -> Result<Classifier> {
        if !path.is_file() {
            bail!("model {} not found: run `make weights` to export the default model, or pass --model", path.display());
        }
        let sidecar = Sidecar::read_beside(path)?;
        let mut module =
            CModule::load_on_device(path, device).map_err(torch_error).with_context(|| {
                format!(
                    "loading model {} (is it a TorchScript file from torch.jit.save?)",
                    path.display()
                )
            })?;
        module.f_set_eval().map_err(torch_error)?;
        // set_eval() leaves parameters requiring grad; without this every
        // backward pass would also compute weight gradients.
        let mut parameter_count = 0;
        for (_, mut parameter) in module.named_parameters().map_err(torch_error)? {
            parameter_count += parameter.numel() as i64;
            let _ = parameter.f_requires_grad_(false).map_err(torch_error)?;
        }
        let output = overrides
            .output
            .clone()
            .or_else(|| sidecar.as_ref().and_then(Sidecar::output_selector));
        let mut classifier = Classifier {
            module,
            device,
            input: InputSpec { channels: 0, height: 0, width: 0, mean: vec![], std: vec![] },
            shape_source: ShapeSource::Sidecar,
            labels: Labels::indices(0),
            labels_source: None,
            output,
            outputs_probabilities: false,
            output_kind: Kind::Float,
            parameter_count,
            warnings: Vec::new(),
        };
        let classes = classifier
            .settle_input(sidecar.as_ref(), overrides, path)
            .with_context(|| format!("model {}", path.display()))?;
        classifier.labels =
            match sidecar.as_ref().map(|s| s.load_labels(path)).transpose()?.flatten() {
                Some(names) if names.len() as i64 != classes => bail!(
                    "model {} has {classes} outputs but its labels list {} names",
                    path.display(),
                    names.len()
                ),
                Some(names) => Labels::new(names),
                None => Labels::indices(classes as usize),
            };
        classifier.labels_source = sidecar.as_ref().and_then(|s| s.labels_description(path));
        classifier.check_for_softmax()?;
        Ok(classifier)
    }

    /// Fix the input spec from the sidecar, the flags, or by probing shapes;
    /// return the number of classes.
    fn settle_input(
        &mut self,
        sidecar: Option<&Sidecar>,
        overrides: &InputOverrides,
        path: &Path,
    ) -> Result<i64> {
        let flag_mean = overrides.mean.as_ref().map(|m| m.0.clone());
        let flag_std = overrides.std.as_ref().map(|s| s.0.clone());
        let mean = flag_mean.clone().or_else(|| sidecar.map(|s| s.mean.clone()));
        let std = flag_std.clone().or_else(|| sidecar.map(|s| s.std.clone()));
        let known_channels =
            sidecar.map(|s| s.input_shape[0]).or(mean.as_ref().map(|m| m.len() as i64));
        let candidates: Vec<([i64; 3], ShapeSource)> = match (overrides.size, sidecar) {
            (Some(size), _) => {
                let channels = known_channels.map_or(vec![3, 1], |c| vec![c]);
                channels
                    .into_iter()
                    .map(|c| ([c, size.height, size.width], ShapeSource::Flags))
                    .collect()
            }
            (None, Some(s)) => {
                vec![([s.input_shape[0], s.input_shape[1], s.input_shape[2]], ShapeSource::Sidecar)]
            }
            (None, None) => PROBE_SHAPES
                .iter()
                .filter(|shape| known_channels.is_none_or(|c| c == shape[0]))
                .map(|&shape| (shape, ShapeSource::Probed))
                .collect(),
        };
        let mut first_error = None;
        for (shape, source) in &candidates {
            match self.probe(*shape) {
                Ok(classes) => {
                    let [channels, height, width] = *shape;
                    let (mean, std) = match (mean, std) {
                        (Some(mean), Some(std)) => (mean, std),
                        (mean, std) => {
                            self.warnings.push(format!(
                                "no mean/std for {}: assuming it takes [0,1] images unnormalised; pass --mean and --std or write a sidecar",
                                path.display()
                            ));
                            (
                                mean.unwrap_or(vec![0.0; channels as usize]),
                                std.unwrap_or(vec![1.0; channels as usize]),
                            )
                        }
                    };
                    check_channel_values("mean", &mean, channels)?;
                    check_channel_values("std", &std, channels)?;
                    self.input = InputSpec { channels, height, width, mean, std };
                    self.shape_source = *source;
                    return Ok(classes);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let err = first_error.unwrap_or_else(|| anyhow!("no input shape to try"));
        match candidates[..] {
            [(shape, _)] => Err(err.context(format!(
                "it does not accept input of shape {:?}; check --size or the sidecar's input_shape",
                [1, shape[0], shape[1], shape[2]]
            ))),
            _ => Err(err.context(format!(
                "no input shape worked (tried {}); pass --size or write a sidecar ({})",
                candidates
                    .iter()
                    .map(|(s, _)| format!("{}x{}x{}", s[0], s[1], s[2]))
                    .collect::<Vec<_>>()
                    .join(", "),
                sidecar_path(path).display()
            ))),
        }
    }

    /// Run one zero image of `shape` through the model; return the number of classes.
    fn probe(&mut self, [channels, height, width]: [i64; 3]) -> Result<i64> {
        let zeros = Tensor::zeros([1, channels, height, width], (Kind::Float, self.device));
        let output = tch::no_grad(|| self.forward(&zeros))?;
        match output.size()[..] {
            [1, classes] if classes > 0 => {
                self.output_kind = output.kind();
                Ok(classes)
            }
            ref other => bail!(
                "its output has shape {other:?}, expected [N, classes]: is it an image classifier?"
            ),
        }
    }

    /// Warn about a model that ends in softmax: the paper optimises pre-softmax scores.
    fn check_for_softmax(&mut self) -> Result<()> {
        let x = Tensor::f_randn(self.input.batch_shape(2), (Kind::Float, self.device))?;
        let outputs = tch::no_grad(|| self.logits(&x))?.to_kind(Kind::Double);
        let non_negative = f64::try_from(outputs.min())? >= 0.0;
        let sums = outputs.sum_dim_intlist(-1, false, Kind::Double);
        let sums_to_one = f64::try_from((sums - 1.0).abs().max())? < 1e-3;
        if non_negative && sums_to_one && self.labels.len() > 1 {
            self.outputs_probabilities = true;
            self.warnings.push(
                "the model's outputs are non-negative and sum to 1: it seems to end in softmax, but the paper \
                 maximises pre-softmax scores; export the model without its softmax, or use --objective log-prob"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Class scores for a batch `[N, C, H, W]` in the model's space: `[N, classes]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let logits = self.forward(x)?;
        if logits.dim() != 2 || logits.size()[0] != x.size()[0] {
            bail!(
                "model output has shape {:?} for input {:?}, expected [N, classes]",
                logits.size(),
                x.size()
            );
        }
        Ok(logits)
    }

    /// Class probabilities `[N, classes]`: the softmax of the scores, or the
    /// outputs themselves for a softmax-ended model.
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        let outputs = self.logits(x)?.to_kind(Kind::Float);
        if self.outputs_probabilities {
            Ok(outputs)
        } else {
            Ok(outputs.f_softmax(-1, Kind::Float)?)
        }
    }

    /// The objective for each image `i` and its target class: `[N]`.
    pub fn objective(&self, x: &Tensor, targets: &Tensor, objective: Objective) -> Result<Tensor> {
        let outputs = self.logits(x)?.to_kind(Kind::Float);
        let per_class = match (objective, self.outputs_probabilities) {
            (Objective::Logit, _) | (Objective::Prob, true) => outputs,
            (Objective::LogProb, false) => outputs.f_log_softmax(-1, Kind::Float)?,
            (Objective::LogProb, true) => {
                outputs.f_clamp_min(f64::from(f32::MIN_POSITIVE))?.f_log()?
            }
            (Objective::Prob, false) => outputs.f_softmax(-1, Kind::Float)?,
        };
        Ok(per_class.f_gather(1, targets, false)?.f_view(-1)?)
    }

    /// The model's output tensor, whatever its shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // libtorch's CPU convolutions run markedly faster on channels-last
        // (NHWC) input; a tensor already laid out so is not copied.
        let x = match (self.device, x.dim()) {
            (Device::Cpu, 4) => {
                x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?
            }
            _ => x.shallow_clone(),
        };
        let output = self.module.forward_is(&[IValue::Tensor(x)]).map_err(torch_error)?;
        select_output(output, self.output.as_ref())
    }

    /// Score 8-bit images as the model sees them after normalisation, one
    /// forward pass for the whole batch; `classes[i]` is image i's target.
    pub fn score_images(&self, images: &[Pixels], classes: &[i64]) -> Result<Vec<Scores>> {
        let batch = images
            .iter()
            .map(|p| image_io::pixels_to_tensor(p, self.device))
            .collect::<Result<Vec<_>>>()?;
        let x = self.input.normalise(&Tensor::f_cat(&batch, 0)?);
        let logits = tch::no_grad(|| self.logits(&x))?.to_kind(Kind::Double).to_device(Device::Cpu);
        let probs = if self.outputs_probabilities {
            logits.shallow_clone()
        } else {
            logits.softmax(-1, Kind::Double)
        };
        let (values, indices) =
            probs.f_topk(TOP_K.min(self.labels.len() as i64), -1, true, true)?;
        let mut scores = Vec::with_capacity(classes.len());
        for (row, &class) in classes.iter().enumerate() {
            let row = row as i64;
            let top = Vec::<i64>::try_from(indices.get(row))?
                .into_iter()
                .zip(Vec::<f64>::try_from(values.get(row))?);
            scores.push(Scores {
                logit: logits.f_double_value(&[row, class])?,
                prob: probs.f_double_value(&[row, class])?,
                top: top.collect(),
            });
        }
        Ok(scores)
    }
}

/// Pick the class-score tensor out of whatever the model's forward returned:
/// a tensor; element 0 (or `selector`'s) of a tuple or list; a dict's
/// `selector` key, else its "logits" or "out" entry.
fn select_output(output: IValue, selector: Option<&OutputSelector>) -> Result<Tensor> {
    let index = match selector {
        Some(OutputSelector::Index(index)) => *index,
        _ => 0,
    };
    let not_a_tensor = || {
        anyhow!(
            "model output {} is not a tensor",
            selector.map_or("element 0".into(), |s| s.to_string())
        )
    };
    match output {
        IValue::Tensor(tensor) => Ok(tensor),
        IValue::TensorList(tensors) => {
            let count = tensors.len();
            tensors.into_iter().nth(index).ok_or_else(|| {
                anyhow!("model returned {count} tensors; --output {index} is out of range")
            })
        }
        IValue::Tuple(items) | IValue::GenericList(items) => {
            let count = items.len();
            match items.into_iter().nth(index) {
                Some(IValue::Tensor(tensor)) => Ok(tensor),
                Some(_) => Err(not_a_tensor()),
                None => bail!("model returned {count} outputs; --output {index} is out of range"),
            }
        }
        IValue::GenericDict(pairs) => {
            let mut entries: Vec<(String, IValue)> =
                pairs
                    .into_iter()
                    .filter_map(|(key, value)| {
                        if let IValue::String(key) = key {
                            Some((key, value))
                        } else {
                            None
                        }
                    })
                    .collect();
            let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
            let wanted: Vec<&str> = match selector {
                Some(OutputSelector::Key(key)) => vec![key.as_str()],
                _ => DEFAULT_OUTPUT_KEYS.to_vec(),
            };
            let position = wanted.iter().find_map(|w| entries.iter().position(|(k, _)| k == w));
            match position.map(|p| entries.swap_remove(p).1) {
                Some(IValue::Tensor(tensor)) => Ok(tensor),
                Some(_) => Err(not_a_tensor()),
                None => {
                    bail!("model returned a dict with keys {keys:?}; choose one with --output-key")
                }
            }
        }
        _ => bail!("model returned something other than a tensor of class scores"),
    }
}

/// libtorch errors carry a C++ backtrace after the first line; keep the message.
pub fn torch_error(err: TchError) -> anyhow::Error {
    let text = err.to_string();
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("unknown libtorch error");
    anyhow!("{}", first.trim_start_matches("Internal torch error: "))
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

    #[test]
    fn normalise_and_denormalise_are_inverse() {
        let spec = InputSpec {
            channels: 3,
            height: 2,
            width: 2,
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.5, 0.25, 0.2],
        };
        let x01 = Tensor::rand([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        let back = spec.denormalise(&spec.normalise(&x01));
        assert!(f64::try_from((back - &x01).abs().max()).unwrap() < 1e-6);
        let zero = spec.normalise(&Tensor::from_slice(&[0.5f32, 0.4, 0.3]).view([1, 3, 1, 1]));
        assert!(f64::try_from(zero.abs().max()).unwrap() < 1e-6, "the mean maps to zero");
    }

    #[test]
    fn torch_errors_keep_only_the_first_line() {
        let err = TchError::Torch(
            "bad thing happened\nException raised from foo at bar.cpp:1\nframe #0".into(),
        );
        assert_eq!(torch_error(err).to_string(), "bad thing happened");
    }
}
