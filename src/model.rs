//! Loading a TorchScript classifier and its metadata, choosing the device,
//! and computing class scores (logits) and the objectives the ascent maximises.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use tch::{CModule, Device, IValue, Kind, TchError, Tensor};

use crate::classes::Labels;
use crate::files;
use crate::image_io::{self, Pixels};
use crate::input::{check_channel_values, ChannelValues, InputSize, InputSpec, FLOAT_BYTES};
use crate::knobs::{self, Jit};
use crate::memory;
use crate::metadata::{sidecar_path, Integrity, OutputSelector, Sidecar, Tap};

/// How many of the best classes a score report lists.
pub const TOP_K: i64 = 5;
/// `--threads` above this is refused: libtorch would start that many threads.
pub const MAX_THREADS: usize = 256;

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

/// Flags that override the sidecar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputOverrides {
    pub mean: Option<ChannelValues>,
    pub std: Option<ChannelValues>,
    pub size: Option<InputSize>,
    /// Which part of a tuple/list/dict output holds the class scores.
    pub output: Option<OutputSelector>,
}

/// Which model, how to feed it, where to run it.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub overrides: InputOverrides,
    pub device: DeviceChoice,
    pub threads: Option<usize>,
}

impl ModelConfig {
    /// Apply the thread count and load the model on the chosen device.
    pub fn load(&self) -> Result<Classifier> {
        if let Some(threads) = self.threads {
            if threads == 0 || threads > MAX_THREADS {
                bail!("--threads {threads}: give 1 to {MAX_THREADS}");
            }
            tch::set_num_threads(threads as i32);
        }
        let device = self.device.resolve()?;
        knobs::trace(|| format!("libtorch ready, device {device:?}"));
        if device.is_cuda() {
            // Loading probes the model with one-off shapes: searching cuDNN's
            // algorithms for each would cost seconds. A run that repeats its
            // shapes turns the search on (`enable_cudnn_benchmark`).
            tch::Cuda::cudnn_set_benchmark(false);
        }
        let model = Classifier::load(&self.path, device, &self.overrides)?;
        knobs::trace(|| format!("model {} loaded", self.path.display()));
        Ok(model)
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

/// With nothing measured yet, an input is assumed to take at least this many
/// times its own size in memory to go through the network (input, output, gradient).
const MIN_MEMORY_FACTOR: u64 = 4;

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

/// A loaded classifier: frozen TorchScript module, its input spec and labels.
pub struct Classifier {
    module: CModule,
    pub path: PathBuf,
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
    /// Intermediate activations the model also returns (a dict output), from its sidecar.
    pub taps: Vec<Tap>,
    /// Things the user should know (printed once on stderr).
    pub warnings: Vec<String>,
}

/// Let cuDNN search for its fastest algorithms: worth it for runs that repeat
/// the same shapes many times (several batches), not for one short batch.
pub fn enable_cudnn_benchmark(device: Device, batches: usize) {
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(knobs::cudnn_benchmark(batches));
    }
}

/// Set how TorchScript runs graphs on this thread (the setting is thread-local).
pub fn use_jit_mode(device: Device) -> Result<()> {
    let simple = knobs::jit(device.is_cuda()) == Jit::Simple;
    tch::jit::f_set_graph_executor_optimize(!simple).map_err(torch_error)?;
    Ok(())
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
        if std::fs::symlink_metadata(path).is_err() {
            bail!("model {} not found: run `make weights` to export the default model, or pass --model", path.display());
        }
        files::check_input_file(path, "model")?;
        let sidecar = Sidecar::read_beside(path)?;
        let integrity = sidecar.as_ref().map(|s| s.verify(path)).transpose()?;
        knobs::trace(|| format!("model file checked: {integrity:?}"));
        use_jit_mode(device)?;
        let (module, parameter_count) = load_module(path, device)?;
        knobs::trace(|| "TorchScript module on the device".to_string());
        let output = overrides
            .output
            .clone()
            .or_else(|| sidecar.as_ref().and_then(Sidecar::output_selector));
        let mut classifier = Classifier {
            module,
            path: path.to_path_buf(),
            device,
            input: InputSpec { channels: 0, height: 0, width: 0, mean: vec![], std: vec![] },
            shape_source: ShapeSource::Sidecar,
            labels: Labels::indices(0),
            labels_source: None,
            output,
            outputs_probabilities: false,
            output_kind: Kind::Float,
            parameter_count,
            taps: sidecar.as_ref().and_then(|s| s.taps.clone()).unwrap_or_default(),
            warnings: Vec::new(),
        };
        if integrity == Some(Integrity::Unrecorded) {
            classifier.warnings.push(format!(
                "{} records no sha256 for {}, so a damaged model file would go unnoticed (weights/export.py records one)",
                sidecar_path(path).display(),
                path.display()
            ));
        }
        let classes = classifier
            .settle_input(sidecar.as_ref(), overrides, path)
            .with_context(|| format!("model {}", path.display()))?;
        knobs::trace(|| "input shape settled (one probe pass)".to_string());
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
        classifier.check_taps().with_context(|| format!("model {}", path.display()))?;
        Ok(classifier)
    }

    /// A second instance of the same model, already settled: for scoring on
    /// another thread, so that the optimising instance's graph executor never
    /// switches out of gradient mode (it re-specialises when it does).
    pub fn twin(&self) -> Result<Classifier> {
        let (module, parameter_count) = load_module(&self.path, self.device)?;
        Ok(Classifier {
            module,
            path: self.path.clone(),
            device: self.device,
            input: self.input.clone(),
            shape_source: self.shape_source,
            labels: self.labels.clone(),
            labels_source: self.labels_source.clone(),
            output: self.output.clone(),
            outputs_probabilities: self.outputs_probabilities,
            output_kind: self.output_kind,
            parameter_count,
            taps: self.taps.clone(),
            warnings: Vec::new(),
        })
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
        // A size given on the command line may be far larger than the network
        // was made for: measure a pass at the sidecar's size and refuse a
        // probe that could not fit, before allocating it.
        let bytes_per_value = match (overrides.size, sidecar) {
            (Some(_), Some(s)) => self.bytes_per_input_value(s.input_shape[..3].try_into()?).ok(),
            _ => None,
        };
        for (shape, _) in &candidates {
            check_fits(shape, 1, bytes_per_value, "--size")?;
        }
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
        let zeros = Tensor::f_zeros([1, channels, height, width], (Kind::Float, self.device))?;
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

    /// Bytes of memory per input value that one forward and backward pass of a
    /// single image of `shape` took, measured as the rise of the process's peak
    /// resident memory (CPU only).
    fn bytes_per_input_value(&self, [channels, height, width]: [i64; 3]) -> Result<u64> {
        if self.device.is_cuda() {
            bail!("measured on the CPU only");
        }
        let meter = memory::PeakMeter::start();
        let input = Tensor::f_zeros([1, channels, height, width], (Kind::Float, self.device))?
            .f_set_requires_grad(true)?;
        let score = self.forward(&input)?.f_sum(Kind::Float)?;
        let _ = Tensor::f_run_backward(&[&score], &[&input], false, false)?;
        let grown = meter.growth().context("peak memory cannot be read")?;
        let values = (channels * height * width) as u64;
        Ok((grown / values.max(1)).max(MIN_MEMORY_FACTOR * FLOAT_BYTES))
    }

    /// Refuse a batch of `batch` images that would not fit in memory, before
    /// allocating it. The activations are measured with one pass of one image
    /// at the input size. On CUDA, running out of memory is an error libtorch
    /// reports cleanly, so nothing is measured there.
    pub fn check_batch_fits(&self, batch: usize) -> Result<()> {
        if self.device.is_cuda() {
            return Ok(());
        }
        let shape = [self.input.channels, self.input.height, self.input.width];
        let per_value = self.bytes_per_input_value(shape).ok();
        check_fits(&shape, batch as u64, per_value, "--batch or --size")
    }

    /// Warn about a model that ends in softmax: the paper optimises pre-softmax scores.
    fn check_for_softmax(&mut self) -> Result<()> {
        let x = Tensor::f_randn(self.input.batch_shape(2), (Kind::Float, self.device))?;
        let outputs = tch::no_grad(|| self.logits(&x))?.f_to_kind(Kind::Double)?;
        let non_negative = f64::try_from(outputs.f_min()?)? >= 0.0;
        let sums = outputs.f_sum_dim_intlist(-1, false, Kind::Double)?;
        let sums_to_one = f64::try_from(sums.f_sub_scalar(1.0)?.f_abs()?.f_max()?)? < 1e-3;
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
        let outputs = self.logits(x)?.f_to_kind(Kind::Float)?;
        if self.outputs_probabilities {
            Ok(outputs)
        } else {
            Ok(outputs.f_softmax(-1, Kind::Float)?)
        }
    }

    /// The tap named `name`, or an error listing the model's taps.
    pub fn tap(&self, name: &str) -> Result<&Tap> {
        if self.taps.is_empty() {
            bail!("tap {name}: {} has no taps; export it with `weights/export.py --taps NAME,…` (see --list-taps)", self.path.display());
        }
        self.taps.iter().find(|tap| tap.name == name).ok_or_else(|| {
            anyhow!(
                "unknown tap {name}; {} has taps {}",
                self.path.display(),
                self.taps.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The class scores and the activations of the taps `names`, from one forward pass.
    pub fn forward_with_taps(&self, x: &Tensor, names: &[&str]) -> Result<(Tensor, Vec<Tensor>)> {
        if names.is_empty() {
            return Ok((self.logits(x)?, Vec::new()));
        }
        for name in names {
            self.tap(name)?;
        }
        let IValue::GenericDict(pairs) = self.forward_value(x)? else {
            bail!("{} returns no dict, so it has no taps to read", self.path.display());
        };
        let mut entries: Vec<(IValue, IValue)> = pairs;
        let mut taps = Vec::with_capacity(names.len());
        for name in names {
            let position = entries
                .iter()
                .position(|(key, _)| matches!(key, IValue::String(k) if k == name))
                .with_context(|| format!("the model's output has no entry {name}"))?;
            match entries.swap_remove(position).1 {
                IValue::Tensor(tensor) => taps.push(tensor),
                _ => bail!("the model's output {name} is not a tensor"),
            }
        }
        let logits = select_output(IValue::GenericDict(entries), self.output.as_ref())?;
        Ok((logits, taps))
    }

    /// Check the sidecar's taps against what the model returns.
    fn check_taps(&self) -> Result<()> {
        if self.taps.is_empty() {
            return Ok(());
        }
        let zeros = Tensor::f_zeros(self.input.batch_shape(1), (Kind::Float, self.device))?;
        let names: Vec<&str> = self.taps.iter().map(|t| t.name.as_str()).collect();
        let (_, activations) = tch::no_grad(|| self.forward_with_taps(&zeros, &names))?;
        for (tap, activation) in self.taps.iter().zip(&activations) {
            let shape = activation.size();
            if shape.len() != 4 || shape[1..] != tap.shape[..] {
                bail!(
                    "tap {} has shape {:?} but the sidecar says {:?}",
                    tap.name,
                    &shape[1.min(shape.len())..],
                    tap.shape
                );
            }
        }
        Ok(())
    }

    /// The model's output tensor, whatever its shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        select_output(self.forward_value(x)?, self.output.as_ref())
    }

    /// What the model's forward returns (a tensor, tuple, list or dict).
    fn forward_value(&self, x: &Tensor) -> Result<IValue> {
        // libtorch's CPU convolutions run markedly faster on channels-last
        // (NHWC) input; a tensor already laid out so is not copied. On CUDA it
        // is a measured choice (README, "GPU").
        let channels_last = match self.device {
            Device::Cpu => true,
            _ => knobs::cuda_channels_last(),
        };
        let x = if channels_last && x.dim() == 4 {
            x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?
        } else {
            x.shallow_clone()
        };
        self.module.forward_is(&[IValue::Tensor(x)]).map_err(torch_error)
    }

    /// Score 8-bit images as the model sees them after normalisation, one
    /// forward pass for the whole batch; `classes[i]` is image i's target.
    pub fn score_images(&self, images: &[Pixels], classes: &[i64]) -> Result<Vec<Scores>> {
        // An image saved at another size (a larger canvas) is scored as
        // `classviz score` would: stretched to the input size.
        let batch = images
            .iter()
            .map(|p| {
                let fitted = image_io::fit_pixels(p, &self.input, image_io::Fit::Stretch)?;
                image_io::pixels_to_tensor(&fitted, self.device)
            })
            .collect::<Result<Vec<_>>>()?;
        let x = self.input.normalise(&Tensor::f_cat(&batch, 0)?)?;
        let logits =
            tch::no_grad(|| self.logits(&x))?.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
        let probs = if self.outputs_probabilities {
            logits.shallow_clone()
        } else {
            logits.f_softmax(-1, Kind::Double)?
        };
        let (values, indices) =
            probs.f_topk(TOP_K.min(self.labels.len() as i64), -1, true, true)?;
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

/// Load a TorchScript module on `device` in eval mode with its parameters
/// frozen; returns it with its trainable-parameter count.
fn load_module(path: &Path, device: Device) -> Result<(CModule, i64)> {
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
    Ok((module, parameter_count))
}

/// Refuse `batch` images of `[C, H, W]` that would not fit in the memory left,
/// at `bytes_per_value` bytes per input value (measured, or a floor).
fn check_fits(
    &[channels, height, width]: &[i64; 3],
    batch: u64,
    bytes_per_value: Option<u64>,
    what_to_shrink: &str,
) -> Result<()> {
    let Some(available) = memory::available_bytes() else { return Ok(()) };
    let values = (channels as u64).saturating_mul(height as u64).saturating_mul(width as u64);
    let per_value = bytes_per_value.unwrap_or(MIN_MEMORY_FACTOR * FLOAT_BYTES);
    let per_image = values.saturating_mul(per_value);
    let needed = per_image.saturating_mul(batch);
    if needed > available {
        let fitting = available / per_image.max(1);
        let advice = if batch > 1 && fitting >= 1 {
            format!("use --batch {fitting} or less, or a smaller --size")
        } else {
            format!("use a smaller {what_to_shrink}")
        };
        bail!(
            "{batch} image(s) of {channels}x{height}x{width} would need about {} of memory ({} per image{}), but only {} is available; {advice}",
            memory::human(needed),
            memory::human(per_image),
            if bytes_per_value.is_some() { ", measured" } else { " at the least" },
            memory::human(available),
        );
    }
    Ok(())
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
                anyhow!("model returned {count} tensors; --output-index {index} is out of range")
            })
        }
        IValue::Tuple(items) | IValue::GenericList(items) => {
            let count = items.len();
            match items.into_iter().nth(index) {
                Some(IValue::Tensor(tensor)) => Ok(tensor),
                Some(_) => Err(not_a_tensor()),
                None => {
                    bail!("model returned {count} outputs; --output-index {index} is out of range")
                }
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
    anyhow!("{}", first_line_of_torch_error(&err.to_string()))
}

/// The first meaningful line of a libtorch error, without its prefix.
pub fn first_line_of_torch_error(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("unknown libtorch error")
        .trim_start_matches("Internal torch error: ")
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
    fn torch_errors_keep_only_the_first_line() {
        let err = TchError::Torch(
            "bad thing happened\nException raised from foo at bar.cpp:1\nframe #0".into(),
        );
        assert_eq!(torch_error(err).to_string(), "bad thing happened");
    }

    #[test]
    fn a_batch_beyond_memory_is_refused_with_advice() {
        let Some(available) = memory::available_bytes() else { return };
        let side = ((available / 12) as f64).sqrt() as i64 + 1000;
        let message = check_fits(&[3, side, side], 1, None, "--size").unwrap_err().to_string();
        assert!(message.contains("use a smaller --size"), "{message}");
        let message = check_fits(&[3, 224, 224], 1 << 40, Some(1000), "--batch").unwrap_err();
        assert!(message.to_string().contains("use --batch"), "{message}");
        assert!(check_fits(&[3, 8, 8], 4, Some(1000), "--batch").is_ok());
    }
}
