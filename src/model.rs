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
}

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

impl InputSpec {
    /// Build the spec from the sidecar (if any) and the flags; flags win.
    pub fn from_sources(
        sidecar: Option<&Sidecar>,
        overrides: &InputOverrides,
        model_path: &Path,
    ) -> Result<Self> {
        let mean = overrides
            .mean
            .as_ref()
            .map(|m| m.0.clone())
            .or_else(|| sidecar.map(|s| s.mean.clone()));
        let std =
            overrides.std.as_ref().map(|s| s.0.clone()).or_else(|| sidecar.map(|s| s.std.clone()));
        let (Some(mean), Some(std)) = (mean, std) else {
            bail!(
                "no input metadata for {}: {} not found; write one (see README, \"Sidecar metadata\") or pass --size, --mean and --std",
                model_path.display(),
                sidecar_path(model_path).display()
            );
        };
        let size = match (overrides.size, sidecar) {
            (Some(size), _) => size,
            (None, Some(s)) => InputSize { height: s.input_shape[1], width: s.input_shape[2] },
            (None, None) => {
                bail!("no input size for {}: pass --size or write a sidecar", model_path.display())
            }
        };
        let channels = sidecar.map_or(mean.len() as i64, |s| s.input_shape[0]);
        check_channel_values("mean", &mean, channels)?;
        check_channel_values("std", &std, channels)?;
        Ok(InputSpec { channels, height: size.height, width: size.width, mean, std })
    }

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

/// A loaded classifier: frozen TorchScript module, its input spec and labels.
pub struct Classifier {
    module: CModule,
    pub device: Device,
    pub input: InputSpec,
    pub labels: Labels,
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
    /// Load `path` (TorchScript) and its sidecar, freeze it, and check that it
    /// maps `[1, C, H, W]` to `[1, classes]`.
    pub fn load(path: &Path, device: Device, overrides: &InputOverrides) -> Result<Classifier> {
        if !path.is_file() {
            bail!(
                "model {} not found: run `make weights` to export the default model, or pass --model",
                path.display()
            );
        }
        let sidecar = Sidecar::read_beside(path)?;
        let input = InputSpec::from_sources(sidecar.as_ref(), overrides, path)?;
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
        for (_, mut parameter) in module.named_parameters().map_err(torch_error)? {
            let _ = parameter.f_requires_grad_(false).map_err(torch_error)?;
        }
        let mut classifier = Classifier { module, device, input, labels: Labels::indices(0) };
        let classes = classifier.probe().with_context(|| format!("model {}", path.display()))?;
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
        Ok(classifier)
    }

    /// Run one zero image through the model; return the number of classes.
    fn probe(&self) -> Result<i64> {
        let shape = self.input.batch_shape(1);
        let zeros = Tensor::zeros(shape, (Kind::Float, self.device));
        let output = tch::no_grad(|| self.forward(&zeros)).with_context(|| {
            format!("it does not accept input of shape {shape:?}; check --size or the sidecar's input_shape")
        })?;
        match output.size()[..] {
            [1, classes] if classes > 0 => Ok(classes),
            ref other => bail!(
                "its output has shape {other:?}, expected [N, classes]: is it an image classifier?"
            ),
        }
    }

    /// Class scores (pre-softmax) for a batch `[N, C, H, W]` in the model's space.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let output =
            self.module.forward_is(&[IValue::Tensor(x.shallow_clone())]).map_err(torch_error)?;
        let logits = output_tensor(output)?;
        if logits.dim() != 2 || logits.size()[0] != x.size()[0] {
            bail!(
                "model output has shape {:?} for input {:?}, expected [N, classes]",
                logits.size(),
                x.size()
            );
        }
        Ok(logits)
    }

    /// The model's output tensor, whatever its shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let output =
            self.module.forward_is(&[IValue::Tensor(x.shallow_clone())]).map_err(torch_error)?;
        output_tensor(output)
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
        let probs = logits.softmax(-1, Kind::Double);
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

/// Pick the class-score tensor out of whatever the model's forward returned.
fn output_tensor(output: IValue) -> Result<Tensor> {
    match output {
        IValue::Tensor(tensor) => Ok(tensor),
        IValue::TensorList(mut tensors) if !tensors.is_empty() => Ok(tensors.swap_remove(0)),
        IValue::Tuple(items) | IValue::GenericList(items) => match items.into_iter().next() {
            Some(IValue::Tensor(tensor)) => Ok(tensor),
            _ => bail!("model returned a tuple/list whose first element is not a tensor"),
        },
        IValue::GenericDict(pairs) => {
            let mut found = None;
            for (key, value) in pairs {
                if let (IValue::String(key), IValue::Tensor(tensor)) = (key, value) {
                    if key == "logits" || (key == "out" && found.is_none()) {
                        found = Some(tensor);
                    }
                }
            }
            found.ok_or_else(|| anyhow!("model returned a dict without a 'logits' or 'out' tensor"))
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
